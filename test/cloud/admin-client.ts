// Client of the reference cloud's admin HTTP API, for tests and benchmarks
// that run the server as a separate process (build/reference-cloud.cjs).
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import type { JobRow, PatchRecord, RequestRecord } from './cloud-state.js';
import type { CancelMode } from './cloud-core.js';
import type { FaultSpec } from './faults.js';
import type { CloudSnapshot, DeviceView } from './reference-cloud.js';

/** The admin operations over HTTP; mirrors the in-process ReferenceCloud methods. */
export interface AdminClient {
  health(): Promise<{ ok: boolean; generation: string; url: string }>;
  addDevice(device: { uuid: string; apiKey?: string; active?: boolean; registrationComplete?: boolean }): Promise<DeviceView>;
  setDevice(uuid: string, flags: { active?: boolean; registrationComplete?: boolean }): Promise<DeviceView>;
  queueJob(uuid: string, job: { name: string; document: unknown; timeout_seconds?: number | null; document_as_string?: boolean; job_id?: string; jsonb?: boolean }): Promise<JobRow>;
  queueJobs(uuid: string, count: number, job: { name: string; document: unknown; timeout_seconds?: number | null }): Promise<JobRow[]>;
  listJobs(uuid?: string): Promise<JobRow[]>;
  getJob(jobId: string): Promise<JobRow>;
  cancelJob(jobId: string): Promise<JobRow>;
  deleteJob(jobId: string): Promise<void>;
  patches(filter?: { jobId?: string; since?: number }): Promise<PatchRecord[]>;
  requests(): Promise<{ counts: Record<string, number>; requests: RequestRecord[] }>;
  counts(): Promise<Record<string, number>>;
  injectFault(spec: FaultSpec): Promise<number>;
  clearFaults(): Promise<void>;
  setCancelMode(mode: CancelMode): Promise<void>;
  addProvisioningKey(key: string, expired?: boolean): Promise<void>;
  preRegisterUuid(uuid: string): Promise<void>;
  /** Closes the listener now and reopens it on the same port after `ms`. */
  down(ms: number): Promise<void>;
  reset(): Promise<void>;
  snapshot(): Promise<CloudSnapshot>;
}

/** Creates a client for the admin API at `adminUrl` (e.g. http://127.0.0.1:41234/admin). */
export function createAdminClient(adminUrl: string): AdminClient {
  const call = async <T>(method: string, path: string, body?: unknown): Promise<T> => {
    const res = await fetch(`${adminUrl}${path}`, {
      method,
      ...(body === undefined ? {} : { headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) }),
    });
    const text = await res.text();
    if (!res.ok) throw new Error(`reference cloud admin ${method} ${path}: ${res.status} ${text}`);
    return (text === '' ? undefined : JSON.parse(text)) as T;
  };
  const seg = encodeURIComponent;
  return {
    health: () => call('GET', '/health'),
    addDevice: (device) => call('POST', '/devices', device),
    setDevice: (uuid, flags) => call('PATCH', `/devices/${seg(uuid)}`, flags),
    queueJob: (uuid, job) => call('POST', `/devices/${seg(uuid)}/jobs`, job),
    queueJobs: async (uuid, count, job) => (await call<{ jobs: JobRow[] }>('POST', `/devices/${seg(uuid)}/jobs`, { ...job, count })).jobs,
    listJobs: async (uuid) => (await call<{ jobs: JobRow[] }>('GET', uuid === undefined ? '/jobs' : `/jobs?uuid=${seg(uuid)}`)).jobs,
    getJob: (jobId) => call('GET', `/jobs/${seg(jobId)}`),
    cancelJob: (jobId) => call('POST', `/jobs/${seg(jobId)}/cancel`),
    deleteJob: (jobId) => call('DELETE', `/jobs/${seg(jobId)}`),
    patches: async (filter = {}) => {
      const query = new URLSearchParams();
      if (filter.jobId !== undefined) query.set('jobId', filter.jobId);
      if (filter.since !== undefined) query.set('since', String(filter.since));
      const qs = query.toString();
      return (await call<{ patches: PatchRecord[] }>('GET', `/patches${qs === '' ? '' : `?${qs}`}`)).patches;
    },
    requests: () => call('GET', '/requests'),
    counts: async () => (await call<{ counts: Record<string, number> }>('GET', '/counts')).counts,
    injectFault: async (spec) => (await call<{ id: number }>('POST', '/faults', spec)).id,
    clearFaults: () => call('DELETE', '/faults'),
    setCancelMode: async (mode) => {
      await call('PUT', '/cancel-mode', { mode });
    },
    addProvisioningKey: async (key, expired = false) => {
      await call('POST', '/provisioning-keys', { key, expired });
    },
    preRegisterUuid: async (uuid) => {
      await call('POST', '/pre-register', { uuid });
    },
    down: async (ms) => {
      await call('POST', '/down', { ms });
    },
    reset: async () => {
      await call('POST', '/reset');
    },
    snapshot: () => call('GET', '/snapshot'),
  };
}

/** A reference cloud running as a child process. */
export interface SpawnedCloud {
  url: string;
  adminUrl: string;
  port: number;
  admin: AdminClient;
  process: ChildProcess;
  /** SIGTERM, then resolves with the exit code. */
  stop(): Promise<number | null>;
}

/** Starts `node <bundle> ...args` (the esbuild bundle of test/cloud/main.ts) and waits for its JSON line. */
export function spawnReferenceCloud(bundle: string, args: string[], nodeBinary = process.execPath): Promise<SpawnedCloud> {
  return new Promise((resolve, reject) => {
    const child = spawn(nodeBinary, [bundle, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr?.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    const exited = new Promise<number | null>((done) => child.once('exit', (code) => done(code)));
    const onEarlyExit = (code: number | null): void => reject(new Error(`reference cloud exited with ${String(code)}: ${stderr.trim()}`));
    child.once('exit', onEarlyExit);
    child.once('error', reject);
    const lines = createInterface({ input: child.stdout as NodeJS.ReadableStream });
    lines.once('line', (line) => {
      child.off('exit', onEarlyExit);
      lines.close();
      try {
        const info = JSON.parse(line) as { url: string; adminUrl: string; port: number };
        resolve({
          ...info,
          admin: createAdminClient(info.adminUrl),
          process: child,
          stop: async () => {
            if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
            return exited;
          },
        });
      } catch (error) {
        child.kill('SIGKILL');
        reject(new Error(`reference cloud printed ${JSON.stringify(line)} instead of its JSON line`, { cause: error }));
      }
    });
  });
}
