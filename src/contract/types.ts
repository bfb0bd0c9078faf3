// Wire types of the cloud API (test/cloud/CONTRACT.md) shared by jobs, state
// and cloud. A bottom module: imports nothing of ours.

/** Every status the server knows. */
export type JobStatus =
  | 'QUEUED'
  | 'IN_PROGRESS'
  | 'SUCCEEDED'
  | 'FAILED'
  | 'TIMED_OUT'
  | 'REJECTED'
  | 'CANCELED';

/** Statuses after which nothing more is reported for a job. */
export const FINAL_STATUSES: ReadonlySet<JobStatus> = new Set([
  'SUCCEEDED',
  'FAILED',
  'TIMED_OUT',
  'REJECTED',
  'CANCELED',
]);

/** Returns whether `status` ends a job. */
export function isFinalStatus(status: JobStatus): boolean {
  return FINAL_STATUSES.has(status);
}

/** Which generation of device paths a server speaks (test/cloud/CONTRACT.md "Two generations of paths"). */
export type ApiGeneration = 'devices' | 'agents';

/** A job as handed out by `GET .../jobs/next`, after shape validation. */
export interface JobOffer {
  jobId: string;
  jobName: string;
  /** Seconds, when the server sent one. */
  timeoutSeconds: number | null;
  createdAt: string | null;
  /** The job document as received (object form; a JSON string was parsed); null when it was dropped for a problem. */
  document: unknown;
  /**
   * Why the offer must be REJECTED, found while reading it (contract/limits.ts:
   * a job_name too long, a job_document nested too deep, which is then not kept).
   */
  problems?: readonly string[];
}

/**
 * The body of `PATCH .../jobs/{jobId}/status`. The server overwrites every
 * column on every PATCH, so every field is always present.
 */
export interface StatusReport {
  status: JobStatus;
  exit_code: number | null;
  stdout: string;
  stderr: string;
  reason: string;
  executed_steps: number;
  failed_step: string | null;
  status_details: Record<string, unknown>;
}

/**
 * The push-notification credentials a registration answer carries
 * (test/cloud/CONTRACT.md "Push notifications over MQTT (both generations)"),
 * normalised. The password is given once, at registration: secret.
 */
export interface MqttRegistration {
  /** mqtt://host:port or mqtts://host:port; '' when the server has no broker for this device. */
  broker: string;
  username: string;
  password: string;
  /** brokerConfig.clientIdPrefix */
  clientIdPrefix?: string;
  /** brokerConfig.keepAlive, seconds */
  keepAliveSeconds?: number;
  /** brokerConfig.caCert: the CA to trust for the broker. */
  caCertPem?: string;
  /** tenantId of the answer (generation agents: part of the topics). */
  tenantId?: string;
}
