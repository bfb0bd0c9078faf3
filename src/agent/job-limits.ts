// The limits a job runs under, as `cloudjobs status` shows them: taken from
// [jobs] and [agent] once at start.
import type { Config } from '../config/schema.js';

/** Limits in force for every job (durations in ms, sizes in bytes). */
export interface JobLimits {
  /** Time limit of a job whose offer names none. */
  defaultTimeoutMs: number;
  /** Output kept per stream of a step. */
  maxOutputBytes: number;
  /** Members of a parallel step that run at once. */
  maxParallel: number;
  /** Reboots one job may ask for. */
  maxReboots: number;
  /** SIGTERM to SIGKILL. */
  killGraceMs: number;
  /** How long a running job may finish when the agent stops. */
  drainTimeoutMs: number;
}

/** Picks the limits out of the configuration. */
export function limitsFromConfig(config: Pick<Config, 'jobs' | 'agent'>): JobLimits {
  return {
    defaultTimeoutMs: config.jobs.default_timeout,
    maxOutputBytes: config.jobs.max_output,
    maxParallel: config.jobs.max_parallel,
    maxReboots: config.jobs.max_reboots,
    killGraceMs: config.jobs.kill_grace,
    drainTimeoutMs: config.agent.drain_timeout,
  };
}
