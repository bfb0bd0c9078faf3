import { readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createManualClock } from '../../../src/clock/clock.js';
import { encodeFileKey } from '../../../src/state/file-key.js';
import { openHistory, type FinishedJob } from '../../../src/state/history.js';
import {
  checkEveryTruncation,
  createRecordingLog,
  HOSTILE_JOB_IDS,
  makeReport,
  makeTempDir,
  T0,
  type RecordingLog,
} from './helpers.js';

const TRUNCATION_TIMEOUT_MS = 180_000;

function open(stateDir: string, size: number, options: { log?: RecordingLog; readOnly?: boolean; maxBytes?: number } = {}) {
  return openHistory({
    stateDir,
    size,
    ...(options.maxBytes === undefined ? {} : { maxBytes: options.maxBytes }),
    log: options.log ?? createRecordingLog(),
    clock: createManualClock(T0),
    readOnly: options.readOnly ?? false,
  });
}

function finished(jobId: string, finishedAt = '2026-11-28T10:05:00.000Z'): FinishedJob {
  return {
    jobId,
    jobName: `name of ${jobId}`,
    receivedAt: '2026-11-28T10:00:00.000Z',
    finishedAt,
    report: makeReport('SUCCEEDED', `${jobId} done`),
  };
}

// The files of the history directory and their total size.
async function historyBytes(stateDir: string): Promise<{ files: number; bytes: number }> {
  const dir = join(stateDir, 'history');
  const names = await readdir(dir);
  let bytes = 0;
  for (const name of names) bytes += (await stat(join(dir, name))).size;
  return { files: names.length, bytes };
}

// The worst case the engine can hand over: a report at the full report budget, all control characters.
function worstCase(jobId: string, budget: number): FinishedJob {
  const half = Math.floor((budget - 2000) / 12); // six bytes per character serialized, two streams
  return {
    ...finished(jobId),
    report: { ...makeReport('FAILED', `${jobId} failed`), stdout: '\u0001'.repeat(half), stderr: '\u0002'.repeat(half) },
  };
}

describe('history bounded in bytes', () => {
  it('after 100 worst-case jobs stays within history_max_bytes on disk, newest kept, oversize outputs cut', async () => {
    const stateDir = await makeTempDir();
    const maxBytes = 1024 * 1024;
    const history = await open(stateDir, 100, { maxBytes });
    let peak = 0;
    for (let i = 1; i <= 100; i += 1) {
      await history.add(worstCase(`w${i}`, 3 * 1024 * 1024));
      const { bytes } = await historyBytes(stateDir);
      peak = Math.max(peak, bytes);
    }
    expect(peak).toBeLessThanOrEqual(maxBytes);
    const { files, bytes } = await historyBytes(stateDir);
    // each entry is cut to a quarter of the budget: the newest four fit
    expect(files).toBe(4);
    expect(bytes).toBeGreaterThan(maxBytes * 0.9);
    expect(history.summaries().map((s) => s.jobId)).toEqual(['w100', 'w99', 'w98', 'w97']);
    const newest = (await history.get('w100'))!;
    expect(newest.report.reason).toBe('w100 failed');
    expect(newest.report.stdout).toMatch(/^\u0001+\n\[\.\.\. \d+ bytes omitted to fit the report size limit \.\.\.\]\n\u0001+$/);
    expect(newest.report.status_details.truncated).toMatchObject({ budget_bytes: expect.any(Number) });
    // reopening with the same bound finds the same entries; a smaller bound prunes the oldest at once
    const smaller = await open(stateDir, 100, { maxBytes: 600 * 1024 });
    expect(smaller.summaries().map((s) => s.jobId)).toEqual(['w100', 'w99']);
    expect((await historyBytes(stateDir)).bytes).toBeLessThanOrEqual(600 * 1024);
  });

  it('with the defaults (16 MiB) keeps 12 MiB reports within the bound', async () => {
    const stateDir = await makeTempDir();
    const maxBytes = 16 * 1024 * 1024;
    const history = await open(stateDir, 100, { maxBytes });
    for (let i = 1; i <= 6; i += 1) await history.add(worstCase(`d${i}`, 12 * 1024 * 1024));
    const { files, bytes } = await historyBytes(stateDir);
    expect(bytes).toBeLessThanOrEqual(maxBytes);
    expect(files).toBe(4);
  });

  it('keeps small entries untouched and counts by entries as before', async () => {
    const stateDir = await makeTempDir();
    const history = await open(stateDir, 3, { maxBytes: 65_536 });
    for (const id of ['s1', 's2', 's3', 's4']) await history.add(finished(id));
    expect(history.summaries().map((s) => s.jobId)).toEqual(['s4', 's3', 's2']);
    expect(await history.get('s4')).toEqual({ version: 1, seq: 4, ...finished('s4') });
  });
});

describe('history', () => {
  it('keeps the newest N on disk and answers get() with the stored final report', async () => {
    const stateDir = await makeTempDir();
    const history = await open(stateDir, 3);
    for (const id of ['j1', 'j2', 'j3', 'j4', 'j5']) await history.add(finished(id));
    expect(history.summaries().map((s) => s.jobId)).toEqual(['j5', 'j4', 'j3']);
    expect(await readdir(join(stateDir, 'history'))).toHaveLength(3);
    expect(await history.get('j1')).toBeUndefined();
    expect(history.has('j1')).toBe(false);
    expect(history.has('j4')).toBe(true);
    expect(await history.get('j4')).toEqual({ version: 1, seq: 4, ...finished('j4') });
    expect((await history.list(2)).map((e) => [e.jobId, e.report.reason])).toEqual([
      ['j5', 'j5 done'],
      ['j4', 'j4 done'],
    ]);
    expect(await history.list(0)).toEqual([]);
    expect(history.summaries(10).map((s) => s.jobId)).toEqual(['j5', 'j4', 'j3']);
  });

  it('orders by when it was added, not by the finished time (a Pi may have no real-time clock)', async () => {
    const stateDir = await makeTempDir();
    const history = await open(stateDir, 10);
    await history.add(finished('late-clock', '2026-11-28T12:00:00.000Z'));
    await history.add(finished('early-clock', '1970-01-01T00:01:00.000Z'));
    const reopened = await open(stateDir, 10);
    expect(reopened.summaries().map((s) => s.jobId)).toEqual(['early-clock', 'late-clock']);
  });

  it('replaces an entry added again and makes it the newest', async () => {
    const stateDir = await makeTempDir();
    const history = await open(stateDir, 10);
    await history.add(finished('a'));
    await history.add(finished('b'));
    await history.add({ ...finished('a'), report: makeReport('FAILED', 'again') });
    expect(history.summaries().map((s) => [s.jobId, s.status])).toEqual([
      ['a', 'FAILED'],
      ['b', 'SUCCEEDED'],
    ]);
    expect(await readdir(join(stateDir, 'history'))).toHaveLength(2);
    expect((await (await open(stateDir, 10)).get('a'))?.report.reason).toBe('again');
  });

  it('trims to a smaller size at open', async () => {
    const stateDir = await makeTempDir();
    const history = await open(stateDir, 10);
    for (const id of ['j1', 'j2', 'j3', 'j4']) await history.add(finished(id));
    const smaller = await open(stateDir, 2);
    expect(smaller.summaries().map((s) => s.jobId)).toEqual(['j4', 'j3']);
    expect(await readdir(join(stateDir, 'history'))).toHaveLength(2);
  });

  it('stores hostile job ids inside its directory and finds them again', async () => {
    const stateDir = await makeTempDir();
    const history = await open(stateDir, 100);
    for (const id of HOSTILE_JOB_IDS) await history.add(finished(id));
    expect(await readdir(stateDir)).toEqual(['history']);
    const reopened = await open(stateDir, 100);
    for (const id of HOSTILE_JOB_IDS) expect((await reopened.get(id))?.jobId).toBe(id);
  });

  it('read-only: never moves a bad file, warns and skips it, refuses add', async () => {
    const stateDir = await makeTempDir();
    const history = await open(stateDir, 10);
    await history.add(finished('good'));
    const bad = join(stateDir, 'history', `${encodeFileKey('bad')}.json`);
    await writeFile(bad, '{"version":1,');
    const log = createRecordingLog();
    const reader = await open(stateDir, 10, { log, readOnly: true });
    expect(reader.summaries().map((s) => s.jobId)).toEqual(['good']);
    expect(log.messages('warn')).toEqual([
      `history file ${bad} is unreadable (Expected double-quoted property name in JSON at position 13); skipped it`,
    ]);
    expect(await readFile(bad, 'utf8')).toBe('{"version":1,');
    await expect(reader.add(finished('x'))).rejects.toThrow('this history was opened read-only');
  });

  it('quarantines an entry truncated to every length and still opens with the others', async () => {
    const stateDir = await makeTempDir({ onTmpfs: true });
    const history = await open(stateDir, 10);
    await history.add(finished('victim'));
    await history.add(finished('survivor'));
    const path = join(stateDir, 'history', `${encodeFileKey('victim')}.json`);
    const full = await readFile(path);
    const checked = await checkEveryTruncation(path, full, async (log) => {
      const reopened = await open(stateDir, 10, { log });
      expect(reopened.summaries().map((s) => s.jobId)).toEqual(['survivor']);
    }, { emptyRemoved: true });
    expect(checked).toBe(full.length);
  }, TRUNCATION_TIMEOUT_MS);
});
