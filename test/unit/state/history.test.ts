import { readdir, readFile, writeFile } from 'node:fs/promises';
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

function open(stateDir: string, size: number, options: { log?: RecordingLog; readOnly?: boolean } = {}) {
  return openHistory({
    stateDir,
    size,
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
    });
    expect(checked).toBe(full.length);
  }, TRUNCATION_TIMEOUT_MS);
});
