import { readdir, readFile, rm, stat, writeFile, copyFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createManualClock } from '../../../src/clock/clock.js';
import { AbortedError } from '../../../src/errors/errors.js';
import { openOutbox, type Outbox } from '../../../src/state/outbox.js';
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

function open(stateDir: string, options: { log?: RecordingLog; maxReports?: number; maxBytes?: number; now?: number } = {}) {
  return openOutbox({
    stateDir,
    maxReports: options.maxReports ?? 1000,
    maxBytes: options.maxBytes ?? 32 * 1024 * 1024,
    log: options.log ?? createRecordingLog(),
    clock: createManualClock(options.now ?? T0),
  });
}

const fileOf = (stateDir: string, seq: number): string => join(stateDir, 'outbox', `${String(seq).padStart(16, '0')}.json`);

/** Sends everything like the delivery loop: next, then ack; returns [jobId, status, reason] in order. */
async function drain(outbox: Outbox): Promise<[string, string, string][]> {
  const sent: [string, string, string][] = [];
  for (let entry = await outbox.next(); entry; entry = await outbox.next()) {
    sent.push([entry.jobId, entry.report.status, entry.report.reason]);
    expect(await outbox.ack(entry.seq)).toBe(true);
  }
  return sent;
}

describe('outbox', () => {
  it('has a report on disk when enqueue resolves and removes it only on ack', async () => {
    const stateDir = await makeTempDir();
    const outbox = await open(stateDir);
    const entry = await outbox.enqueue('job-1', makeReport('SUCCEEDED'));
    expect(entry).toMatchObject({ seq: 1, jobId: 'job-1', final: true, status: 'SUCCEEDED', enqueuedAt: '2026-11-28T10:00:00.000Z' });
    const onDisk = JSON.parse(await readFile(fileOf(stateDir, 1), 'utf8')) as Record<string, unknown>;
    expect(onDisk).toEqual({
      version: 1,
      seq: 1,
      jobId: 'job-1',
      final: true,
      enqueuedAt: '2026-11-28T10:00:00.000Z',
      report: makeReport('SUCCEEDED'),
    });
    const next = await outbox.next();
    expect(next?.report).toEqual(makeReport('SUCCEEDED'));
    expect(await readdir(join(stateDir, 'outbox'))).toEqual(['0000000000000001.json']);
    expect(await outbox.ack(1)).toBe(true);
    expect(await outbox.ack(1)).toBe(false);
    expect(await readdir(join(stateDir, 'outbox'))).toEqual([]);
    expect(await outbox.next()).toBeUndefined();
    expect(outbox.stats()).toEqual({ count: 0, finals: 0, bytes: 0, oldestEnqueuedAt: null });
  });

  it('coalesces progress reports of a job: only the newest waits', async () => {
    const stateDir = await makeTempDir();
    const outbox = await open(stateDir);
    await outbox.enqueue('a', makeReport('IN_PROGRESS', 'a1'));
    await outbox.enqueue('b', makeReport('IN_PROGRESS', 'b1'));
    await outbox.enqueue('a', makeReport('IN_PROGRESS', 'a2'));
    expect(outbox.entries().map((e) => [e.seq, e.jobId])).toEqual([
      [2, 'b'],
      [3, 'a'],
    ]);
    // progress reports wait in memory: none is written
    expect(await readdir(join(stateDir, 'outbox'))).toEqual([]);
    expect(await drain(outbox)).toEqual([
      ['b', 'IN_PROGRESS', 'b1'],
      ['a', 'IN_PROGRESS', 'a2'],
    ]);
  });

  it('lets a final supersede waiting progress and drops progress enqueued after a final', async () => {
    const outbox = await open(await makeTempDir());
    await outbox.enqueue('a', makeReport('IN_PROGRESS', 'a1'));
    await outbox.enqueue('a', makeReport('FAILED', 'a final'));
    expect(await outbox.enqueue('a', makeReport('IN_PROGRESS', 'late'))).toBeNull();
    expect(outbox.hasPendingFinal('a')).toBe(true);
    expect(outbox.hasPendingFinal('b')).toBe(false);
    expect(await drain(outbox)).toEqual([['a', 'FAILED', 'a final']]);
    expect(outbox.hasPendingFinal('a')).toBe(false);
  });

  it('keeps every final of a job, in order', async () => {
    const outbox = await open(await makeTempDir());
    await outbox.enqueue('a', makeReport('FAILED', 'first'));
    await outbox.enqueue('a', makeReport('CANCELED', 'second'));
    expect(await drain(outbox)).toEqual([
      ['a', 'FAILED', 'first'],
      ['a', 'CANCELED', 'second'],
    ]);
  });

  it('treats the ack of a progress report replaced while in flight as a no-op', async () => {
    const outbox = await open(await makeTempDir());
    await outbox.enqueue('a', makeReport('IN_PROGRESS', 'a1'));
    const inFlight = await outbox.next();
    await outbox.enqueue('a', makeReport('IN_PROGRESS', 'a2'));
    expect(await outbox.ack(inFlight!.seq)).toBe(false);
    expect(await drain(outbox)).toEqual([['a', 'IN_PROGRESS', 'a2']]);
  });

  it('keeps the finals in order across restarts, forgets progress reports and continues the sequence', async () => {
    const stateDir = await makeTempDir();
    const first = await open(stateDir);
    await first.enqueue('a', makeReport('IN_PROGRESS', 'a1'));
    await first.enqueue('b', makeReport('SUCCEEDED', 'b final'));
    await first.enqueue('c', makeReport('IN_PROGRESS', 'c1'));
    await first.enqueue('a', makeReport('FAILED', 'a final'));
    const log = createRecordingLog();
    const second = await open(stateDir, { log });
    expect(log.messages('info')).toEqual(["outbox holds 2 report(s) from before the restart; delivering them in order"]);
    expect(second.entries().map((e) => e.seq)).toEqual([2, 4]);
    expect((await second.enqueue('c', makeReport('SUCCEEDED', 'c final')))?.seq).toBe(5);
    const third = await open(stateDir);
    expect(await drain(third)).toEqual([
      ['b', 'SUCCEEDED', 'b final'],
      ['a', 'FAILED', 'a final'],
      ['c', 'SUCCEEDED', 'c final'],
    ]);
  });

  it('loads the progress files an older version wrote, coalescing what a crash between adding and removing left', async () => {
    const stateDir = await makeTempDir();
    await open(stateDir);
    const written = (seq: number, reason: string) => ({
      version: 1, seq, jobId: 'a', final: false, enqueuedAt: '2026-11-28T10:00:00.000Z', report: makeReport('IN_PROGRESS', reason),
    });
    await writeFile(fileOf(stateDir, 1), JSON.stringify(written(1, 'old')));
    await writeFile(fileOf(stateDir, 2), JSON.stringify(written(2, 'new')));
    const reopened = await open(stateDir);
    expect(reopened.entries().map((e) => [e.seq, e.status])).toEqual([[2, 'IN_PROGRESS']]);
    expect(await readdir(join(stateDir, 'outbox'))).toEqual(['0000000000000002.json']);
    expect((await reopened.enqueue('a', makeReport('SUCCEEDED', 'final')))?.seq).toBe(3);
    expect(await readdir(join(stateDir, 'outbox'))).toEqual(['0000000000000003.json']);
    expect(await drain(reopened)).toEqual([['a', 'SUCCEEDED', 'final']]);
  });

  it('drops the oldest progress reports when full, with a warning, and keeps every final over the bound', async () => {
    const stateDir = await makeTempDir();
    const log = createRecordingLog();
    const outbox = await open(stateDir, { log, maxReports: 4 });
    for (const job of ['p1', 'p2', 'p3']) await outbox.enqueue(job, makeReport('IN_PROGRESS'));
    await outbox.enqueue('f1', makeReport('SUCCEEDED'));
    expect(log.messages('warn')).toEqual([]);
    await outbox.enqueue('f2', makeReport('SUCCEEDED'));
    await outbox.enqueue('f3', makeReport('FAILED'));
    expect(outbox.entries().map((e) => e.jobId)).toEqual(['p3', 'f1', 'f2', 'f3']);
    const dropped =
      'outbox is full (bound 4 reports / 33554432 bytes) because the cloud has not accepted reports; dropped the 1 oldest progress report(s) to make room; final reports are kept';
    // one warning per episode of being full, not one per dropped report
    expect(log.messages('warn')).toEqual([dropped]);
    await outbox.enqueue('f4', makeReport('FAILED'));
    await outbox.enqueue('f5', makeReport('CANCELED'));
    await outbox.enqueue('f6', makeReport('TIMED_OUT'));
    expect(outbox.entries().map((e) => e.jobId)).toEqual(['f1', 'f2', 'f3', 'f4', 'f5', 'f6']);
    expect(log.messages('warn').slice(1)).toEqual([
      `outbox holds 5 final report(s) in ${outbox.stats().bytes - outbox.entries()[5]!.bytes} bytes, over its bound of 4 reports / 33554432 bytes; final reports are never dropped, so it stays over the bound until the cloud accepts them`,
    ]);
    // a progress report that does not fit is dropped at once
    expect(await outbox.enqueue('p9', makeReport('IN_PROGRESS'))).toBeNull();
    for (const job of ['f1', 'f2', 'f3', 'f4', 'f5', 'f6']) expect(outbox.hasPendingFinal(job)).toBe(true);
    expect(await readdir(join(stateDir, 'outbox'))).toHaveLength(6);
    expect(outbox.stats().finals).toBe(6);
  });

  it('bounds bytes too, counting the size of each file (progress reports: of their JSON, kept in memory)', async () => {
    const stateDir = await makeTempDir();
    const log = createRecordingLog();
    const outbox = await open(stateDir, { log, maxBytes: 2000 });
    const big = (status: 'IN_PROGRESS' | 'SUCCEEDED') => ({ ...makeReport(status), stdout: 'x'.repeat(700) });
    await outbox.enqueue('p1', big('IN_PROGRESS'));
    await outbox.enqueue('p2', big('IN_PROGRESS'));
    await outbox.enqueue('f1', big('SUCCEEDED'));
    expect(outbox.entries().map((e) => e.jobId)).toEqual(['p2', 'f1']);
    let onDisk = 0;
    for (const name of await readdir(join(stateDir, 'outbox'))) onDisk += (await stat(join(stateDir, 'outbox', name))).size;
    const [progress, final] = outbox.entries();
    expect(final!.bytes).toBe(onDisk);
    const stored = { version: 1, seq: 2, jobId: 'p2', final: false, enqueuedAt: '2026-11-28T10:00:00.000Z', report: big('IN_PROGRESS') };
    expect(progress!.bytes).toBe(Buffer.byteLength(JSON.stringify(stored)));
    expect(outbox.stats().bytes).toBe(progress!.bytes + final!.bytes);
    expect(log.messages('warn')).toHaveLength(1);
  });

  it('reports count, bytes and the oldest entry time', async () => {
    const stateDir = await makeTempDir();
    const clock = createManualClock(T0);
    const outbox = await openOutbox({ stateDir, maxReports: 10, maxBytes: 1e6, log: createRecordingLog(), clock });
    await outbox.enqueue('a', makeReport('SUCCEEDED'));
    await clock.advance(60_000);
    await outbox.enqueue('b', makeReport('IN_PROGRESS'));
    const stats = outbox.stats();
    expect(stats.count).toBe(2);
    expect(stats.finals).toBe(1);
    expect(stats.oldestEnqueuedAt).toBe(T0);
    expect(stats.bytes).toBe(outbox.entries().reduce((sum, e) => sum + e.bytes, 0));
  });

  it('wakes a waiting delivery loop on enqueue and stops waiting on abort', async () => {
    const outbox = await open(await makeTempDir());
    let woke = false;
    const waiting = outbox.waitForEntry().then(() => {
      woke = true;
    });
    await Promise.resolve();
    expect(woke).toBe(false);
    await outbox.enqueue('a', makeReport('SUCCEEDED'));
    await waiting;
    expect(woke).toBe(true);
    await outbox.waitForEntry();
    await outbox.ack(1);
    const controller = new AbortController();
    const aborted = outbox.waitForEntry(controller.signal);
    controller.abort();
    await expect(aborted).rejects.toBeInstanceOf(AbortedError);
  });

  it('does no disk I/O when idle', async () => {
    const stateDir = await makeTempDir();
    const outbox = await open(stateDir);
    await rm(join(stateDir, 'outbox'), { recursive: true });
    expect(await outbox.next()).toBeUndefined();
    expect(outbox.stats().count).toBe(0);
    expect(outbox.hasPendingFinal('a')).toBe(false);
  });

  it('stores hostile job ids exactly', async () => {
    const stateDir = await makeTempDir();
    const outbox = await open(stateDir);
    for (const id of HOSTILE_JOB_IDS) await outbox.enqueue(id, makeReport('SUCCEEDED'));
    expect(await readdir(stateDir)).toEqual(['outbox']);
    const reopened = await open(stateDir);
    expect((await drain(reopened)).map(([id]) => id)).toEqual([...HOSTILE_JOB_IDS]);
  });

  it('pendingFinal reads the waiting final of a job; one that went bad is quarantined and no longer pending', async () => {
    const stateDir = await makeTempDir();
    const log = createRecordingLog();
    const outbox = await open(stateDir, { log });
    await outbox.enqueue('a', makeReport('IN_PROGRESS', 'progress'));
    await outbox.enqueue('a', makeReport('SUCCEEDED', 'a final'));
    await outbox.enqueue('b', makeReport('FAILED', 'b final'));
    expect((await outbox.pendingFinal('a'))?.reason).toBe('a final');
    expect(await outbox.pendingFinal('c')).toBeUndefined();
    await writeFile(fileOf(stateDir, 3), '{"version":1');
    expect(await outbox.pendingFinal('b')).toBeUndefined();
    expect(outbox.hasPendingFinal('b')).toBe(false);
    expect(log.messages('warn')).toHaveLength(1);
    expect(log.messages('warn')[0]).toContain(`state file ${fileOf(stateDir, 3)} is corrupt`);
  });

  it('quarantines a report that went bad after open and delivers the next one', async () => {
    const stateDir = await makeTempDir();
    const log = createRecordingLog();
    const outbox = await open(stateDir, { log });
    await outbox.enqueue('a', makeReport('SUCCEEDED'));
    await outbox.enqueue('b', makeReport('SUCCEEDED'));
    await writeFile(fileOf(stateDir, 1), '{"version":1');
    expect((await outbox.next())?.jobId).toBe('b');
    expect(log.messages('warn')).toEqual([
      `state file ${fileOf(stateDir, 1)} is corrupt (Expected ',' or '}' after property value in JSON at position 12); moved it to ${fileOf(stateDir, 1)}.corrupt-20261128T100000Z and went on without it`,
    ]);
    expect(outbox.stats().count).toBe(1);
  });

  it('quarantines a report truncated to every length and still opens with the others', async () => {
    const stateDir = await makeTempDir({ onTmpfs: true });
    const outbox = await open(stateDir);
    await outbox.enqueue('a', makeReport('FAILED'));
    await outbox.enqueue('b', makeReport('SUCCEEDED'));
    const path = fileOf(stateDir, 1);
    const full = await readFile(path);
    const checked = await checkEveryTruncation(path, full, async (log) => {
      const reopened = await open(stateDir, { log });
      expect(reopened.entries().map((e) => e.jobId)).toEqual(['b']);
    }, { emptyRemoved: true });
    expect(checked).toBe(full.length);
  }, TRUNCATION_TIMEOUT_MS);
});
