// Job documents the benchmarks queue, and reading a finished job's timing
// from what the reference cloud recorded.
import type { ReferenceCloud } from '../../cloud/reference-cloud.js';

/** A version 1.0 document of runCommand steps (comma-separated argv strings). */
export function buildCommandJob(commands: readonly string[]): Record<string, unknown> {
  return {
    version: '1.0',
    includeStdOut: true,
    steps: commands.map((command, i) => ({ action: { name: `step ${i + 1}`, type: 'runCommand', input: { command } } })),
  };
}

/** The server's view of one finished job. */
export interface JobTiming {
  /** When the server handed the job out (ms since the epoch). */
  handedOutAt: number;
  /** When the final status PATCH arrived. */
  finishedAt: number;
  status: string;
  executedSteps: unknown;
}

/** Reads the hand-out time and final PATCH of `jobId`; throws when it has not finished. */
export function readJobTiming(cloud: ReferenceCloud, jobId: string): JobTiming {
  const row = cloud.getJob(jobId);
  if (!row?.started_at) throw new Error(`job ${jobId} was never handed out`);
  const final = cloud.patches(jobId).find((p) => {
    const status = (p.body as { status?: string } | null)?.status;
    return status !== undefined && status !== 'IN_PROGRESS' && status !== 'QUEUED';
  });
  if (!final) throw new Error(`job ${jobId} has no final status`);
  const body = final.body as { status: string; executed_steps?: unknown; reason?: unknown };
  return { handedOutAt: Date.parse(row.started_at), finishedAt: final.at, status: body.status, executedSteps: body.executed_steps };
}

/** True once the server holds a final status for `jobId`. */
export function isJobFinal(cloud: ReferenceCloud, jobId: string): boolean {
  const status = cloud.getJob(jobId)?.status;
  return status !== undefined && status !== 'QUEUED' && status !== 'IN_PROGRESS';
}
