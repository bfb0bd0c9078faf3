// Helpers for the durability e2e tests (issue 4): jobs whose steps append to a
// file the run user can write, checks of the PATCH bodies the cloud received,
// state-dir inspection, a seeded random source, and /proc readings.
import { chmod, mkdir, readdir, readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { expect } from 'vitest';
import { FINAL_STATUSES, type JobStatus } from '../../src/contract/types.js';
import type { PatchRecord, ReferenceCloud } from '../cloud/reference-cloud.js';
import type { AgentDirs, AgentProcess } from './harness.js';
import { REPORT_FIELDS, type ReportBody } from './polling-helpers.js';



/** Creates a directory under the agent's root that the job user can write to. */
export async function createSharedDir(dirs: AgentDirs, name = 'appends'): Promise<string> {
  const dir = path.join(dirs.root, name);
  await mkdir(dir, { recursive: true });
  await chmod(dir, 0o777);
  return dir;
}

/** Name of step `k` (1-based) of an append job. */
export function stepName(k: number): string {
  return `append ${k}`;
}

/**
 * A job of `steps` runCommand steps; step k appends "step k" to `file` as its
 * first action, prints "did k" and then sleeps `sleepSeconds`, so a kill can
 * land inside a step as well as between steps.
 */
export function appendJob(file: string, steps: number, sleepSeconds: number): Record<string, unknown> {
  return {
    version: '1.0',
    includeStdOut: true,
    steps: Array.from({ length: steps }, (_, i) => ({
      action: {
        name: stepName(i + 1),
        type: 'runCommand',
        input: { command: ['/bin/sh', '-c', `echo "step ${i + 1}" >> '${file}'; echo "did ${i + 1}"; sleep ${sleepSeconds}`] },
      },
    })),
  };
}

/** The lines of a file, or [] when it does not exist. */
export async function readLines(file: string): Promise<string[]> {
  const text = await readFile(file, 'utf8').catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') return '';
    throw error;
  });
  return text.split('\n').filter((line) => line !== '');
}

/** The PATCH bodies the cloud received for a job, in order. */
export function reportBodies(cloud: ReferenceCloud, jobId: string): ReportBody[] {
  return cloud.patches(jobId).map((p: PatchRecord) => p.body as ReportBody);
}

/** Whether a status ends a job. */
export function isFinal(status: string): boolean {
  return FINAL_STATUSES.has(status as JobStatus);
}

/** Asserts a PATCH body carries every field of test/cloud/CONTRACT.md "Status update" with its column type. */
export function expectCompleteReport(body: unknown): asserts body is ReportBody {
  expect(body).toBeTypeOf('object');
  const b = body as Record<string, unknown>;
  expect(Object.keys(b).sort()).toEqual([...REPORT_FIELDS].sort());
  expect(b.status).toBeTypeOf('string');
  if (b.exit_code !== null) expect(Number.isInteger(b.exit_code)).toBe(true);
  expect(b.stdout).toBeTypeOf('string');
  expect(b.stderr).toBeTypeOf('string');
  expect(b.reason).toBeTypeOf('string');
  expect(Number.isInteger(b.executed_steps)).toBe(true);
  if (b.failed_step !== null) expect(b.failed_step).toBeTypeOf('string');
  expect(b.status_details).toBeTypeOf('object');
  expect(Array.isArray((b.status_details as { steps?: unknown }).steps)).toBe(true);
}

/**
 * Asserts the PATCHes of one job: every one complete, IN_PROGRESS ones first,
 * then exactly one final, nothing after it. Returns the final body.
 */
export function expectOneFinalLast(cloud: ReferenceCloud, jobId: string): ReportBody {
  const bodies = reportBodies(cloud, jobId);
  for (const body of bodies) expectCompleteReport(body);
  const statuses = bodies.map((b) => b.status);
  const finals = statuses.filter(isFinal);
  expect(finals, `final reports of ${jobId}: ${statuses.join(', ')}`).toHaveLength(1);
  expect(isFinal(statuses[statuses.length - 1]!), `last report of ${jobId}: ${statuses.join(', ')}`).toBe(true);
  expect(statuses.slice(0, -1).every((s) => s === 'IN_PROGRESS')).toBe(true);
  expect(cloud.getJob(jobId)?.status).toBe(finals[0]);
  return bodies[bodies.length - 1]!;
}

/** Files (not directories) directly under `dir` with their total size. */
export async function listFiles(dir: string): Promise<{ names: string[]; bytes: number }> {
  const names: string[] = [];
  let bytes = 0;
  for (const entry of await readdir(dir, { withFileTypes: true }).catch(() => [])) {
    if (!entry.isFile()) continue;
    // a file may go while we look (a temp file renamed, a report acknowledged)
    const info = await stat(path.join(dir, entry.name)).catch(() => null);
    if (info === null) continue;
    names.push(entry.name);
    bytes += info.size;
  }
  return { names: names.sort(), bytes };
}

/** Resident set size of a process in KiB (VmRSS of /proc/<pid>/status). */
export async function readRssKiB(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const match = /^VmRSS:\s+(\d+)\s+kB$/m.exec(status);
  if (!match) throw new Error(`no VmRSS in /proc/${pid}/status`);
  return Number(match[1]);
}

/** Pids of live processes whose environment holds CLOUDJOBS_JOB_ID=<one of jobIds> (those jobs' steps). */
export async function findJobProcesses(jobIds: readonly string[]): Promise<number[]> {
  if (jobIds.length === 0) return [];
  const wanted = jobIds.map((id) => Buffer.from(`\0CLOUDJOBS_JOB_ID=${id}\0`));
  const found: number[] = [];
  for (const name of await readdir('/proc')) {
    if (!/^\d+$/.test(name) || Number(name) === process.pid) continue;
    const environ = await readFile(`/proc/${name}/environ`).catch(() => null);
    if (!environ || environ.length === 0) continue;
    const padded = Buffer.concat([Buffer.from([0]), environ]);
    if (!wanted.some((w) => padded.includes(w))) continue;
    const statText = await readFile(`/proc/${name}/stat`, 'utf8').catch(() => '');
    const state = statText.slice(statText.lastIndexOf(')') + 2, statText.lastIndexOf(')') + 3);
    if (state !== '' && state !== 'Z' && state !== 'X') found.push(Number(name));
  }
  return found;
}

/**
 * Waits for the step processes a killed agent left behind (they end on their
 * own: every step sleeps briefly); SIGKILLs them by pid after `timeoutMs`.
 */
export async function reapOrphanSteps(jobIds: readonly string[], timeoutMs = 3000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const pids = await findJobProcesses(jobIds);
    if (pids.length === 0) return;
    if (Date.now() >= deadline) {
      for (const pid of pids) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // already gone
        }
      }
      return;
    }
    await sleep(25);
  }
}

/** The seed from CLOUDJOBS_TEST_SEED, or a fresh one. */
export function chooseSeed(env: NodeJS.ProcessEnv = process.env): number {
  const given = env.CLOUDJOBS_TEST_SEED;
  if (given !== undefined && /^\d+$/.test(given)) return Number(given);
  return Math.floor(Math.random() * 2 ** 31);
}

/** Lines of the agent's output that match `pattern`. */
export function outputLines(agent: AgentProcess, pattern: RegExp): string[] {
  return agent.output().split('\n').filter((line) => pattern.test(line));
}

/** Kills an agent with SIGKILL and waits for it to be gone. */
export async function killHard(agent: AgentProcess): Promise<void> {
  if (agent.child.exitCode !== null || agent.child.signalCode !== null) return;
  agent.kill('SIGKILL');
  await agent.exited;
}
