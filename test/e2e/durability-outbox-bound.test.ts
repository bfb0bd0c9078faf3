// Issue 4, "Done when" 4: the outbox reaches its bound while the cloud does not
// take reports: every final report is kept (on disk, then on the cloud), the
// oldest progress reports are dropped with a warning, and disk and memory stay
// bounded.
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { expectOneFinalLast, listFiles, outputLines, readRssKiB } from './durability-helpers.js';
import { stopAgent, waitFor } from './harness.js';
import { createScope } from './polling-helpers.js';

const BOUND = 10;
const JOBS = 24;

const scope = createScope();
afterEach(() => scope.cleanup());

// A job whose one step prints ~40 KB and runs long enough for a few progress reports.
function chattyJob(n: number): Record<string, unknown> {
  return {
    version: '1.0',
    includeStdOut: true,
    steps: [{ name: `chatty ${n}`, type: 'runCommand', input: { command: ['/bin/sh', '-c', `head -c 40000 /dev/zero | tr '\\0' x; echo; sleep 0.3; echo done ${n}`] } }],
  };
}

// Reads what the outbox directory holds: files, bytes, and how many are finals (of which jobs).
async function readOutboxDir(dir: string): Promise<{ files: number; bytes: number; finals: string[]; progress: number }> {
  const { names, bytes } = await listFiles(dir);
  const finals: string[] = [];
  let progress = 0;
  for (const name of names.filter((n) => /^\d{16}\.json$/.test(n))) {
    const text = await readFile(path.join(dir, name), 'utf8').catch(() => null);
    if (text === null) continue; // removed while we looked
    const stored = JSON.parse(text) as { final: boolean; jobId: string };
    if (stored.final) finals.push(stored.jobId);
    else progress += 1;
  }
  return { files: names.length, bytes, finals, progress };
}

describe('outbox at its bound while the cloud takes no reports', () => {
  it('keeps every final, drops the oldest progress reports with a warning, stays bounded on disk and in memory', async () => {
    const started = await scope.cloud();
    const { cloud } = started;
    const dirs = await scope.dirs(cloud, started.device, {
      agent: { outbox_max_reports: String(BOUND) },
      jobs: { progress_interval: '100ms' },
    });
    const outboxDir = path.join(dirs.stateDir, 'outbox');
    // polling works, every status PATCH has its connection cut
    cloud.injectFault({ kind: 'drop', times: 'always', match: '^PATCH ' });
    const jobs = cloud.queueJobs(started.device.uuid, JOBS, { name: 'chatty', document: chattyJob(0) });
    const agent = scope.agent(dirs);
    const pid = agent.child.pid!;

    // memory once the agent is warm (a few jobs done), and the disk all along
    await waitFor(async () => (await readOutboxDir(outboxDir)).finals.length >= 3, 30_000, '3 finals in the outbox');
    const rssWarm = await readRssKiB(pid);
    let peakFiles = 0;
    let peakOverBound = 0;
    let samples = 0;
    await waitFor(
      async () => {
        const seen = await readOutboxDir(outboxDir);
        samples += 1;
        peakFiles = Math.max(peakFiles, seen.files);
        // at most one job runs, so at most one progress report waits beside the finals (two while one replaces the other)
        peakOverBound = Math.max(peakOverBound, seen.files - Math.max(BOUND, seen.finals.length));
        return seen.finals.length === JOBS;
      },
      90_000,
      `${JOBS} finals in the outbox`,
      50,
    );
    const rssEnd = await readRssKiB(pid);

    // every final is on disk, one per job, nothing else once idle
    await sleep(300);
    const held = await readOutboxDir(outboxDir);
    expect(held.finals.sort()).toEqual(jobs.map((j) => j.job_id).sort());
    expect(held.progress).toBe(0);
    expect(held.files).toBe(JOBS);
    expect(peakOverBound, `outbox files beyond max(bound, finals) in ${samples} samples`).toBeLessThanOrEqual(2);
    expect(peakFiles).toBeLessThanOrEqual(JOBS + 2);
    // finals of ~40 KB each at most (max_output 64 KiB per stream); no stray files
    expect(held.bytes).toBeLessThan(JOBS * 100_000);
    expect(cloud.patches()).toHaveLength(0);

    // the agent said what it dropped and why
    const dropped = outputLines(agent, new RegExp(`outbox is full \\(bound ${BOUND} reports / 33554432 bytes\\) because the cloud has not accepted reports; dropped the \\d+ oldest progress report\\(s\\) to make room; final reports are kept`));
    expect(dropped.length).toBeGreaterThanOrEqual(1);
    // warned once per episode of being full; the drops after it go to debug
    expect(dropped.filter((line) => / WARN /.test(line))).toHaveLength(1);
    expect(dropped.slice(1).every((line) => / DEBUG /.test(line))).toBe(true);
    const over = outputLines(agent, /over its bound of 10 reports \/ 33554432 bytes; final reports are never dropped/);
    expect(over.length).toBeGreaterThanOrEqual(1);
    expect(over[0]).toMatch(new RegExp(`WARN outbox holds ${BOUND + 1} final report\\(s\\) in \\d+ bytes`));

    // memory: generous, not a timing (the index holds no bodies)
    console.log(`agent VmRSS: ${rssWarm} KiB warm, ${rssEnd} KiB with ${JOBS} finals queued; ${dropped.length} drop warning(s), peak ${peakFiles} files in ${samples} samples`);
    expect(rssEnd).toBeLessThan(rssWarm + 64 * 1024);

    // the cloud comes back: every job gets its final, exactly once, and the outbox empties
    cloud.clearFaults();
    await waitFor(() => jobs.every((j) => cloud!.getJob(j.job_id)!.status === 'SUCCEEDED'), 60_000, 'every final delivered');
    await waitFor(async () => (await listFiles(outboxDir)).names.length === 0, 10_000, 'an empty outbox');
    for (const job of jobs) {
      const final = expectOneFinalLast(cloud, job.job_id);
      expect(final).toMatchObject({ status: 'SUCCEEDED', exit_code: 0, executed_steps: 1, failed_step: null, reason: '1 of 1 steps succeeded' });
      expect(final.stdout).toContain('done 0\n');
    }
    expect(await stopAgent(agent)).toEqual({ code: 0, signal: null });
  });
});
