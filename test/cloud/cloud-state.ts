// The reference cloud's in-memory tables: devices, jobs, received PATCHes,
// request log and counters. Plain maps so 1,000 simulated agents stay cheap.
import { createHash, randomUUID, type KeyObject } from 'node:crypto';
import type { JobStatus } from '../../src/contract/types.js';
import { reorderAsJsonb } from './jsonb.js';

/** A device known to the cloud before the test starts. */
export interface DeviceSeed {
  uuid: string;
  /** The device API key; only its sha256 is kept. Omit for a device that never got one. */
  apiKey?: string;
  /** @default true */
  active?: boolean;
  /** @default true */
  registrationComplete?: boolean;
  deviceName?: string;
  deviceType?: string;
}

/** A provisioning key the registration endpoints accept (or reject as expired). */
export interface ProvisioningKeySeed {
  key: string;
  /** @default false */
  expired?: boolean;
  /** @default "fleet-1" */
  fleetId?: string;
}

/** An Ed25519 challenge handed out by the `agents` generation. */
export interface ChallengeRecord {
  value: string;
  expiresAt: number;
  used: boolean;
}

/** One row of the devices table. */
export interface DeviceRecord {
  id: number;
  uuid: string;
  apiKeyHash: string | null;
  active: boolean;
  registrationComplete: boolean;
  deviceName: string;
  deviceType: string;
  fleetId: string;
  createdAt: string;
  macAddress: string | null;
  osVersion: string | null;
  agentVersion: string | null;
  publicKey: KeyObject | null;
  challenge: ChallengeRecord | null;
}

/** One row of the job status table, as the server stores it (snake_case like the database). */
export interface JobRow {
  job_id: string;
  device_uuid: string;
  job_name: string;
  job_document: unknown;
  /** null: the server omits timeout_seconds for this job (generation `devices`). */
  timeout_seconds: number | null;
  /** Hand the document out as a JSON string instead of an object. */
  document_as_string: boolean;
  /** The document is stored as JSONB (reorderAsJsonb); as a string it is handed out as jsonb::text. */
  jsonb: boolean;
  status: JobStatus;
  exit_code: unknown;
  stdout: unknown;
  stderr: unknown;
  reason: unknown;
  executed_steps: unknown;
  failed_step: unknown;
  status_details: unknown;
  created_at: string;
  started_at: string | null;
  updated_at: string;
  completed_at: string | null;
  /** Canceled through the admin API (drives the cancel extension). */
  canceled_by_server: boolean;
  /** How many PATCHes were applied to this row. */
  patch_count: number;
}

/** A status PATCH exactly as received, whatever the server answered. */
export interface PatchRecord {
  seq: number;
  /** Server clock, ms since the epoch. */
  at: number;
  receivedAt: string;
  uuid: string;
  jobId: string;
  path: string;
  rawBody: string;
  /** The parsed body, or null when it did not parse. */
  body: unknown;
  /** The HTTP status the server answered with (0: the client went away before the body was read). */
  answer: number;
  /** A 'lose-answer' fault cut the connection instead of sending `answer` (the row was still updated). */
  answerLost: boolean;
}

/** One request to the device side of the server. */
export interface RequestRecord {
  seq: number;
  at: number;
  method: string;
  path: string;
  /** The route template, e.g. `GET /devices/:uuid/jobs/next`, or `unknown`. */
  route: string;
  /** Which credential header the request carried. */
  auth: 'x-device-api-key' | 'bearer' | 'none';
  /** Set when an injected fault answered instead of the route. */
  fault: string | null;
  /** The answered status; 0 while pending or when the connection was dropped/hung. */
  status: number;
}

/** What the admin side may pass when queuing a job. */
export interface QueueJobInput {
  name: string;
  document: unknown;
  /** Seconds; null or omitted: the server omits the field (generation `agents` always sends 3600). */
  timeoutSeconds?: number | null;
  /** Hand the document out as a JSON string. @default false */
  documentAsString?: boolean;
  /** A fixed job id instead of a random uuid. */
  jobId?: string;
  /** Store the document as PostgreSQL JSONB does (members reordered; as a string, jsonb::text). @default false */
  jsonb?: boolean;
}

/** Returns the hex sha256 of a device API key, the only form the cloud keeps. */
export function hashApiKey(key: string): string {
  return createHash('sha256').update(key, 'utf8').digest('hex');
}

/** The mutable tables of one reference cloud instance. */
export interface CloudState {
  devices: Map<string, DeviceRecord>;
  jobs: Map<string, JobRow>;
  /** Per device, job ids in queue order (may hold ids no longer QUEUED). */
  queues: Map<string, string[]>;
  patches: PatchRecord[];
  requests: RequestRecord[];
  counts: Map<string, number>;
  provisioningKeys: Map<string, ProvisioningKeySeed>;
  /** Uuids pre-registered on the dashboard, handed to the next registrations in order. */
  preRegistered: string[];
  /** Registration attempts per client IP: window start and count. */
  registrationAttempts: Map<string, { windowStart: number; count: number }>;
  /** Device API requests per key hash: window start and count. */
  deviceRequests: Map<string, { windowStart: number; count: number }>;
  nextDeviceId: number;
  nextPatchSeq: number;
  nextRequestSeq: number;
}

/** Creates empty tables, then seeds devices and provisioning keys. */
export function createCloudState(devices: readonly DeviceSeed[], keys: readonly ProvisioningKeySeed[], nowMs: number): CloudState {
  const state: CloudState = {
    devices: new Map(),
    jobs: new Map(),
    queues: new Map(),
    patches: [],
    requests: [],
    counts: new Map(),
    provisioningKeys: new Map(),
    preRegistered: [],
    registrationAttempts: new Map(),
    deviceRequests: new Map(),
    nextDeviceId: 1,
    nextPatchSeq: 1,
    nextRequestSeq: 1,
  };
  for (const seed of devices) addDevice(state, seed, nowMs);
  for (const key of keys) state.provisioningKeys.set(key.key, { ...key });
  return state;
}

/** Adds (or replaces) a device row from a seed. */
export function addDevice(state: CloudState, seed: DeviceSeed, nowMs: number): DeviceRecord {
  const record: DeviceRecord = {
    id: state.nextDeviceId++,
    uuid: seed.uuid,
    apiKeyHash: seed.apiKey === undefined ? null : hashApiKey(seed.apiKey),
    active: seed.active ?? true,
    registrationComplete: seed.registrationComplete ?? true,
    deviceName: seed.deviceName ?? `device-${seed.uuid.slice(0, 8)}`,
    deviceType: seed.deviceType ?? 'raspberrypi4-64',
    fleetId: 'fleet-1',
    createdAt: new Date(nowMs).toISOString(),
    macAddress: null,
    osVersion: null,
    agentVersion: null,
    publicKey: null,
    challenge: null,
  };
  state.devices.set(seed.uuid, record);
  return record;
}

/** Queues one job for a device and returns its row. */
export function queueJob(state: CloudState, uuid: string, input: QueueJobInput, nowMs: number): JobRow {
  const iso = new Date(nowMs).toISOString();
  const row: JobRow = {
    job_id: input.jobId ?? randomUUID(),
    device_uuid: uuid,
    job_name: input.name,
    job_document: input.jsonb ? reorderAsJsonb(input.document) : input.document,
    timeout_seconds: input.timeoutSeconds ?? null,
    document_as_string: input.documentAsString ?? false,
    jsonb: input.jsonb ?? false,
    status: 'QUEUED',
    exit_code: null,
    stdout: null,
    stderr: null,
    reason: null,
    executed_steps: null,
    failed_step: null,
    status_details: null,
    created_at: iso,
    started_at: null,
    updated_at: iso,
    completed_at: null,
    canceled_by_server: false,
    patch_count: 0,
  };
  state.jobs.set(row.job_id, row);
  let queue = state.queues.get(uuid);
  if (!queue) {
    queue = [];
    state.queues.set(uuid, queue);
  }
  queue.push(row.job_id);
  return row;
}

/** Takes the oldest QUEUED job of a device and marks it IN_PROGRESS, like the server does when it answers. */
export function takeNextJob(state: CloudState, uuid: string, nowMs: number): JobRow | null {
  const queue = state.queues.get(uuid);
  while (queue && queue.length > 0) {
    const id = queue.shift() as string;
    const row = state.jobs.get(id);
    if (row && row.status === 'QUEUED') {
      const iso = new Date(nowMs).toISOString();
      row.status = 'IN_PROGRESS';
      row.started_at = iso;
      row.updated_at = iso;
      return row;
    }
  }
  return null;
}

/** A public copy of a job row (the server's answer and the admin view). */
export function copyJobRow(row: JobRow): JobRow {
  return { ...row };
}
