// The job engine's entry point: startJob runs a validated job (job-run.ts).
import { JobRun, type EngineOptions, type JobHooks, type JobStart } from './job-run.js';
import type { NormalizedJob } from './types.js';

export type { EngineOptions, JobHooks, JobRun, JobStart };

/** Starts running `job` (from scratch, or after the earlier results in `start`); see JobRun. */
export function startJob(job: NormalizedJob, options: EngineOptions, hooks: JobHooks = {}, start: JobStart = {}): JobRun {
  return new JobRun(job, options, hooks, start);
}
