// What the agent is built from (AgentDeps) and the ports its modules use: the
// job engine, the reboot machinery, systemd, and the metrics observer. Types
// only; the implementations live in engine-adapter.ts and src/cli/run-command.ts.
import type { Clock } from '../clock/clock.js';
import type { PollScheduler, RetryBackoff } from '../cloud/backoff.js';
import type { CloudClient } from '../cloud/client.js';
import type { PushStatus } from '../cloud/push-settings.js';
import type { JobOffer, StatusReport } from '../contract/types.js';
import type { LocalFault } from '../errors/errors.js';
import type { NormalizedJob, StepResult } from '../jobs/types.js';
import type { Log } from '../log/log.js';
import type { BootIdentity } from '../state/boot-identity.js';
import type { History } from '../state/history.js';
import type { Journal, JournalEntry } from '../state/journal.js';
import type { Outbox } from '../state/outbox.js';
import type { SelfUpdateOutcome } from '../state/self-update-outcome.js';
import type { JobGate } from './job-gate.js';
import type { JobLimits } from './job-limits.js';
import type { AgentStatus } from './status.js';
import type { PlannedRun, StopCause } from './stop-cause.js';

/** Everything the agent needs. */
export interface AgentDeps {
  clock: Clock;
  log: Log;
  cloud: CloudClient;
  scheduler: PollScheduler;
  deliveryRetry: RetryBackoff;
  journal: Journal;
  outbox: Outbox;
  history: History;
  engine: EnginePort;
  reboot: RebootPort;
  notifier: NotifierPort;
  writeStatus(status: AgentStatus): Promise<void>;
  version: string;
  identitySource: string;
  pid: number;
  /** Null when jobs run; else why the agent idles (e.g. "jobs.enabled is false"). */
  disabledReason: string | null;
  /** The longest idle wait between two polls (polling.interval; with push, the longer of it and mqtt.poll_interval_when_connected): the health allowance. */
  longestPollWaitMs: number;
  /** How often a held or degraded agent asks again: the job gate, the state_dir probe, held final reports (polling.interval). */
  recheckIntervalMs: number;
  /** cloud.request_timeout: how long one poll may be in flight. */
  requestTimeoutMs: number;
  progressIntervalMs: number;
  drainTimeoutMs: number;
  /** How long shutdown may spend flushing the outbox. */
  flushTimeoutMs: number;
  /** Why the agent stops (stop-cause.ts), from root's word only (systemd's job for the unit) and `running` as the agent planned them; absent: every stop drains. */
  stopCause?(running: readonly PlannedRun[]): Promise<StopCause>;
  /** The self-update handler's outcome for a job (state/self-update-outcome.ts); absent: none is looked for. */
  selfUpdate?: {
    read(jobId: string): Promise<SelfUpdateOutcome | null>;
    remove(jobId: string): Promise<void>;
  };
  /** Time systemd must allow on stop beyond the drain deadline (kill grace, flush, margin); sent as EXTEND_TIMEOUT_USEC. */
  stopAllowanceMs?: number;
  /** Checks state_dir without writing (checkStateDir) before each poll and step; a fault means degraded mode. */
  checkState?(): Promise<LocalFault | null>;
  /** Proves state_dir takes writes again (probeStateDir); asked every recheck interval while degraded. */
  probeState?(): Promise<LocalFault | null>;
  /** The push channel's state for status (absent: no push configured). */
  pushStatus?: () => PushStatus;
  /** A full garbage collection, run once the agent is quiet after a job (service/memory.ts); none when absent. */
  reclaimMemory?: () => void;
  /** Asked before each poll: while it holds, the cloud is not asked for a job (job-gate.ts). */
  jobGate?: JobGate;
  /** Told of polls and finished jobs (metrics). */
  observer?: AgentObserver;
  /** Shown in status. */
  limits?: JobLimits;
}

/** A running job. */
export interface JobRunPort {
  done: Promise<StatusReport>;
  snapshot(): StatusReport;
  stop(kind: 'cancel' | 'shutdown'): void;
  /** Once done: the step that asked for a reboot (the run ended after it), else null. */
  readonly rebootRequest: RebootRequest | null;
  /** Starts no further step; the job ends FAILED with `reason` unless every step ran. */
  halt(reason: string): void;
}

/** A step's reboot request as the engine names it. */
export interface RebootRequest {
  label: string;
  stepsDone: number;
}

/** The long-lived loops the agent watches: if one dies, the agent fails (loop-watch.ts). */
export type LoopName = 'poll' | 'delivery' | 'progress' | 'status writer';

/** The job engine as the agent uses it. */
export interface EnginePort {
  /** Validates an offer (its signature first); rejects with the list of problems (JobValidationError). `resumed`: accepted before a reboot. */
  validate(offer: JobOffer, options?: { resumed?: boolean }): Promise<NormalizedJob>;
  /** Runs `job`; with `start`, after the steps that already ran (a job resumed after a reboot). */
  start(job: NormalizedJob, hooks: {
    onStepStart(index: number, total: number, name: string): void | Promise<void>;
    onStepEnd(result: StepResult, index: number, total: number): void | Promise<void>;
    /** True once the agent is stopping: a step starting then runs outside the job's slice (job-unit.ts). */
    agentStopping?(): boolean;
  }, start?: { finished: readonly StepResult[]; startedAtMs: number }): JobRunPort;
  rejectedReport(problems: readonly string[]): StatusReport;
  /** The FAILED report of a job that was never started (nothing ran), with `reason`. */
  unstartedReport(reason: string): StatusReport;
  /** The FAILED report of an interrupted job, found in `currentBoot` (null: not known). */
  interruptedReport(entry: JournalEntry, currentBoot: BootIdentity | null): StatusReport;
  /** The job's whole time limit (timeout_seconds, else jobs.default_timeout). */
  timeoutOf(offer: JobOffer): Promise<number>;
  /** A final report from the journal alone (a rebooting job that ends without running on). */
  journaledReport(entry: JournalEntry, status: 'FAILED' | 'TIMED_OUT', reason: string): StatusReport;
  /** Removes the work dirs an interrupted job left behind (logs what it did; never rejects). */
  removeLeftovers?(jobId: string): Promise<void>;
}

/** How the agent reboots for a job, and tells a reboot from a restart. */
export interface RebootPort {
  /** The boot the agent runs in (boot_id and the runtime_dir marker). */
  currentBoot(): Promise<BootIdentity>;
  /** Runs jobs.reboot_command; rejects with a sentence when it fails. */
  requestReboot(): Promise<void>;
  /** jobs.max_reboots. */
  maxReboots: number;
  /** jobs.reboot_users: users besides root whose steps may ask for a reboot. */
  rebootUsers: readonly string[];
  /** jobs.reboot_timeout. */
  rebootTimeoutMs: number;
  /** What `reboot` runs, for messages ("systemctl reboot"). */
  commandText: string;
}

/** systemd's view of the agent (no-ops outside systemd). */
export interface NotifierPort {
  ready(): void;
  status(text: string): void;
  stopping(): void;
  /** EXTEND_TIMEOUT_USEC: systemd waits at least `ms` more for the stop to finish. */
  extendTimeout?(ms: number): void;
}

/** Facts the agent reports as they happen (the metrics, metrics/agent-metrics.ts). */
export interface AgentObserver {
  /** A poll ended: `outcome` as in AgentStatus.lastPoll ('job', 'no job' or the failure kind). */
  polled(poll: { at: number; outcome: string }): void;
  /** A job ended with a final report (once per job). */
  jobFinished(status: StatusReport['status'], durationMs: number): void;
}
