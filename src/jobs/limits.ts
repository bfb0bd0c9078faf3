// The limits a job runs with: the device's ceiling from [jobs] memory_max,
// tasks_max and cpu_quota, lowered (never raised) by the job document's own
// "limits" object (extension), and the sentences reports use to name them.
// Pure arithmetic and text; job-unit.ts applies them to a systemd slice.
import { parsePercent, parseSize } from '../config/parse-value.js';

/** One job's limits; null means no limit of that kind. */
export interface JobLimits {
  /** Bytes of memory (RAM) the job's processes may use together. */
  memoryMax: number | null;
  /** Processes and threads the job may have at once. */
  tasksMax: number | null;
  /** CPU time as percent of one CPU (systemd's CPUQuota=: 200 is two CPUs). */
  cpuQuota: number | null;
}

/** Where each limit came from, named in reasons ("jobs.memory_max" or "the job's limits.memoryMax"). */
export type LimitSource = 'config' | 'document';

/** The limits in force and where each came from. */
export interface EffectiveLimits extends JobLimits {
  sources: { [K in keyof JobLimits]: LimitSource };
}

/** What the document may ask for, as validated (null: not asked). */
export type LimitRequest = JobLimits;

/** The smallest memory limit a job may ask for: below it nothing (not even a shell) starts. */
const MIN_MEMORY_MAX = 4 * 1024 * 1024;
/** The largest tasks_max systemd and the kernel accept (pid_max's ceiling). */
const MAX_TASKS = 4_194_304;

const FIELDS = { memoryMax: 'memory_max', tasksMax: 'tasks_max', cpuQuota: 'cpu_quota' } as const;
const MAX_TEXT = 32;

/** The ceiling from [jobs]: memory_max bytes (0: none), tasks_max (0: none), cpu_quota as a fraction (0: none). */
export function ceilingFromConfig(jobs: { memory_max: number; tasks_max: number; cpu_quota: number }): JobLimits {
  return {
    memoryMax: jobs.memory_max > 0 ? jobs.memory_max : null,
    tasksMax: jobs.tasks_max > 0 ? jobs.tasks_max : null,
    // the config holds percentages as fractions (0.8); systemd and reports speak percent
    cpuQuota: jobs.cpu_quota > 0 ? Math.round(jobs.cpu_quota * 10_000) / 100 : null,
  };
}

/**
 * Reads the document's "limits" object; each problem (not an object, an
 * unknown field, a bad value, a value above the ceiling) goes to `problems`.
 * Returns the request, all null when the document has no limits.
 */
export function readLimitRequest(raw: unknown, ceiling: JobLimits, problems: { add(problem: string): void }): LimitRequest {
  const request: LimitRequest = { memoryMax: null, tasksMax: null, cpuQuota: null };
  if (raw === undefined || raw === null) return request;
  if (typeof raw !== 'object' || Array.isArray(raw)) {
    problems.add('limits must be an object such as {"memoryMax": "128MiB", "tasksMax": 64, "cpuQuota": "50%"}');
    return request;
  }
  const record = raw as Record<string, unknown>;
  for (const key of Object.keys(record)) {
    if (!Object.hasOwn(FIELDS, key)) {
      problems.add(`limits.${key.slice(0, 64)} is not a limit; known limits are memoryMax, tasksMax and cpuQuota`);
    }
  }
  request.memoryMax = readField(record.memoryMax, 'memoryMax', readMemory, problems);
  request.tasksMax = readField(record.tasksMax, 'tasksMax', readTasks, problems);
  request.cpuQuota = readField(record.cpuQuota, 'cpuQuota', readQuota, problems);
  for (const key of Object.keys(FIELDS) as (keyof JobLimits)[]) {
    const asked = request[key];
    const most = ceiling[key];
    if (asked !== null && most !== null && asked > most) {
      problems.add(
        `limits.${key} ${formatLimitValue(key, asked)} is above this device's jobs.${FIELDS[key]} of ${formatLimitValue(key, most)}; a job may only lower its limits`,
      );
      request[key] = null;
    }
  }
  return request;
}

/** The limits in force: the request where it asks, else the ceiling. */
export function applyLimitRequest(ceiling: JobLimits, request: LimitRequest): EffectiveLimits {
  const pick = (key: keyof JobLimits): { value: number | null; source: LimitSource } =>
    request[key] !== null && (ceiling[key] === null || (request[key] as number) <= (ceiling[key] as number))
      ? { value: request[key], source: 'document' }
      : { value: ceiling[key], source: 'config' };
  const memory = pick('memoryMax');
  const tasks = pick('tasksMax');
  const cpu = pick('cpuQuota');
  return {
    memoryMax: memory.value,
    tasksMax: tasks.value,
    cpuQuota: cpu.value,
    sources: { memoryMax: memory.source, tasksMax: tasks.source, cpuQuota: cpu.source },
  };
}

/** A step's reason after the kernel's OOM killer struck inside the job. */
export function describeOutOfMemory(limits: EffectiveLimits): string {
  if (limits.memoryMax === null) return 'out of memory: the OOM killer ended a process of the job';
  return `out of memory: the job's memory limit is ${formatBytes(limits.memoryMax)} (${nameSource('memoryMax', limits.sources.memoryMax)})`;
}

/** A step's reason after the job could not fork any more. */
export function describeTasksMax(limits: EffectiveLimits): string {
  return `stopped at the task limit: the job may have ${limits.tasksMax ?? 'no more'} processes and threads at once (${nameSource('tasksMax', limits.sources.tasksMax)})`;
}

/** The limits as reports and `cloudjobs status` show them. */
export function describeLimits(limits: JobLimits): string {
  const memory = limits.memoryMax === null ? 'no memory limit' : `memory ${formatBytes(limits.memoryMax)}`;
  const tasks = limits.tasksMax === null ? 'no task limit' : `${limits.tasksMax} tasks`;
  const cpu = limits.cpuQuota === null ? 'no CPU quota' : `CPU ${limits.cpuQuota}%`;
  return `${memory}, ${tasks}, ${cpu}`;
}

/** Bytes as people read them: 256 MiB, 1.5 GiB, 3000 bytes. */
export function formatBytes(bytes: number): string {
  const units: ReadonlyArray<readonly [string, number]> = [
    ['GiB', 1024 ** 3],
    ['MiB', 1024 ** 2],
    ['KiB', 1024],
  ];
  for (const [unit, size] of units) {
    if (bytes >= size) return `${Number((bytes / size).toFixed(1))} ${unit}`;
  }
  return `${bytes} bytes`;
}

/** systemd's CPUQuotaPerSecUSec for a quota in percent of one CPU (80 -> 800000). */
export function quotaPerSecUsec(percent: number): number {
  return Math.max(1000, Math.round(percent * 10_000));
}

function formatLimitValue(key: keyof JobLimits, value: number): string {
  if (key === 'memoryMax') return formatBytes(value);
  if (key === 'cpuQuota') return `${value}%`;
  return String(value);
}

function nameSource(key: keyof JobLimits, source: LimitSource): string {
  return source === 'document' ? `the job's limits.${key}` : `jobs.${FIELDS[key]}`;
}

function readField(
  raw: unknown,
  key: keyof JobLimits,
  read: (raw: unknown) => number | string,
  problems: { add(problem: string): void },
): number | null {
  if (raw === undefined || raw === null) return null;
  const value = read(raw);
  if (typeof value === 'string') {
    problems.add(`limits.${key} ${value}, got ${describeValue(raw)}`);
    return null;
  }
  return value;
}

// Each reader returns the value or the sentence after "limits.<key> ".
function readMemory(raw: unknown): number | string {
  const expected = `must be a size such as "128MiB" (at least ${formatBytes(MIN_MEMORY_MAX)}) or a number of bytes`;
  let bytes: number | null = null;
  if (typeof raw === 'number' && Number.isSafeInteger(raw)) bytes = raw;
  if (typeof raw === 'string' && raw.length <= MAX_TEXT) {
    const parsed = parseSize(raw);
    if (parsed.ok) bytes = parsed.value;
  }
  return bytes !== null && bytes >= MIN_MEMORY_MAX && Number.isSafeInteger(bytes) ? bytes : expected;
}

function readTasks(raw: unknown): number | string {
  const ok = typeof raw === 'number' && Number.isSafeInteger(raw) && raw >= 1 && raw <= MAX_TASKS;
  return ok ? raw : `must be a whole number from 1 to ${MAX_TASKS}`;
}

function readQuota(raw: unknown): number | string {
  let percent: number | null = null;
  if (typeof raw === 'number' && Number.isFinite(raw)) percent = raw;
  if (typeof raw === 'string' && raw.length <= MAX_TEXT) {
    const parsed = parsePercent(raw);
    if (parsed.ok) percent = parsed.value;
  }
  return percent !== null && percent >= 1 && percent <= 100 * 1024
    ? Math.round(percent * 100) / 100
    : 'must be a percentage of one CPU such as "50%" (at least 1%)';
}

function describeValue(raw: unknown): string {
  const text = typeof raw === 'string' ? JSON.stringify(raw.length > 40 ? `${raw.slice(0, 40)}…` : raw) : JSON.stringify(raw);
  return text === undefined ? typeof raw : text.slice(0, 60);
}
