// The outbox: every final status report is on disk before it is sent and
// leaves the disk only when the cloud acknowledged it (or said it never will).
// Progress reports wait in memory.
//
// INVARIANTS
// - One file per final report, `<seq>.json` with a zero-padded, strictly
//   increasing sequence number; delivery order is seq order, so reports of
//   one job go out in the order they were enqueued, across restarts.
// - A progress (non-final) report is never written: it waits in memory, in
//   the same seq order, and a crash loses it and nothing else. The server
//   keeps whichever PATCH comes last and every PATCH carries every column, so
//   the final report (of the job, or of its interruption at the next start)
//   says all a lost progress report said. Writing each one durably cost an
//   SD card three ext4 journal commits, about 100 KiB, per report.
//   Progress files left by an older version are loaded and delivered.
// - Adding writes the new file (atomically) before anything is removed; a crash
//   in between leaves an extra progress report that open() coalesces away.
// - At most one progress (non-final) report per job waits: a newer progress or
//   a final of the same job supersedes it (the server overwrites every column,
//   so the newest report carries everything). A progress report is never
//   enqueued behind a final of its job (it would overwrite the final on the
//   server), it is dropped instead.
// - Final reports are removed only by ack(): never by coalescing or bounds.
//   When the bounds are exceeded, progress reports go, oldest first; if only
//   finals remain the outbox stays over its bound and says so.
// - All mutations run through one serial queue; the in-memory index changes
//   only after the disk did. The index holds no final report's body (bounded
//   memory whatever outbox_max_bytes is); next() reads the body from disk.
//   Memory holds the bodies of waiting progress reports: at most one per job,
//   each bounded like any report (contract/fit-report.ts). An idle agent
//   (empty outbox) does no disk I/O.
// - ack() of a seq that coalescing already removed is a harmless no-op: the
//   delivery loop may be sending a progress report while a newer one replaces it.
//
// Recovery protocol with the journal (the agent's side): recordFinal in the
// journal, then enqueue the final, then add it to history, then remove the
// journal entry. At start, a journal entry with a final whose job is neither
// in history nor hasPendingFinal() is enqueued again; otherwise only removed.
import { join } from 'node:path';
import type { Clock } from '../clock/clock.js';
import { isFinalStatus, type StatusReport } from '../contract/types.js';
import { AbortedError } from '../errors/errors.js';
import type { Log } from '../log/log.js';
import { createFileDurable, ensurePrivateDir, listDirectory, removeFileDurable, removeStaleTempFiles } from './atomic-file.js';
import { checkJson, quarantineFile, readTextIfExists, setAsideRecordFile, STATE_FILE_MODE } from './json-file.js';
import { createSerialQueue } from './serial-queue.js';
import { resolveStatePaths } from './state-paths.js';
import {
  expectBoolean,
  expectInteger,
  expectNonEmptyString,
  expectRecord,
  expectTimestamp,
  expectVersion,
  failValidation,
} from './validate.js';
import { validateStatusReport } from './validate-records.js';

const OUTBOX_VERSION = 1;
const NAME_PATTERN = /^(\d{16})\.json$/;

/** What the index keeps of one waiting report (no body). */
export interface OutboxEntryInfo {
  seq: number;
  jobId: string;
  /** Whether the report ends the job (derived from its status). */
  final: boolean;
  status: StatusReport['status'];
  /** ISO time it was enqueued. */
  enqueuedAt: string;
  /** Size of its file (or, in memory, of its JSON) in bytes. */
  bytes: number;
}

/** One waiting report with its body. */
export interface OutboxEntry extends OutboxEntryInfo {
  report: StatusReport;
}

/** Counters for `cloudjobs status`. */
export interface OutboxStats {
  count: number;
  finals: number;
  bytes: number;
  /** ms since the epoch of the oldest waiting report, or null when empty. */
  oldestEnqueuedAt: number | null;
}

/** The bounds from `[agent] outbox_max_reports` and `outbox_max_bytes`. */
export interface OutboxLimits {
  maxReports: number;
  maxBytes: number;
}

/** The durable queue of status reports. */
export interface Outbox {
  /** Stores a report durably; returns it, or null when a progress report was dropped because a final of the job waits. */
  enqueue(jobId: string, report: StatusReport): Promise<OutboxEntry | null>;
  /** The oldest waiting report with its body, or undefined when empty. */
  next(): Promise<OutboxEntry | undefined>;
  /** Removes a delivered (or never-deliverable) report; returns false if it was already gone. */
  ack(seq: number): Promise<boolean>;
  stats(): OutboxStats;
  /** Whether a final report of `jobId` waits. */
  hasPendingFinal(jobId: string): boolean;
  /** The oldest waiting final report of `jobId` (read from disk; one that went bad is quarantined as next() does), or undefined. */
  pendingFinal(jobId: string): Promise<StatusReport | undefined>;
  /** The waiting reports in delivery order (no bodies). */
  entries(): OutboxEntryInfo[];
  /** Resolves as soon as a report waits (at once if one does); rejects with AbortedError on abort. */
  waitForEntry(signal?: AbortSignal): Promise<void>;
}

/** Options for openOutbox. */
export interface OutboxOptions extends OutboxLimits {
  stateDir: string;
  log: Log;
  clock: Clock;
}

/** An outbox file as stored. */
export interface StoredOutboxEntry {
  version: 1;
  seq: number;
  jobId: string;
  final: boolean;
  enqueuedAt: string;
  report: StatusReport;
}

/** Opens the outbox under `stateDir/outbox`, loading what a previous run left in sequence order. */
export async function openOutbox(options: OutboxOptions): Promise<Outbox> {
  const { log, clock, maxReports, maxBytes } = options;
  const paths = resolveStatePaths(options.stateDir);
  const dir = paths.outboxDir;
  await ensurePrivateDir(paths.stateDir);
  await ensurePrivateDir(dir);
  await removeStaleTempFiles(dir);

  // seq -> info, kept in ascending seq order (Map keeps insertion order; seqs only grow)
  const index = new Map<number, OutboxEntryInfo>();
  // jobId -> its waiting progress report's seq (at most one after coalescing) and number of waiting finals
  const jobs = new Map<string, { progress: number[]; finals: number }>();
  // seq -> body of a waiting progress report kept in memory only; every other entry is a file
  const inMemory = new Map<number, StatusReport>();
  let totalBytes = 0;
  let totalFinals = 0;
  let overBoundWarned = false;
  let droppedInEpisode = 0;
  let waiters: (() => void)[] = [];
  const queue = createSerialQueue();
  const pathFor = (seq: number): string => join(dir, `${String(seq).padStart(16, '0')}.json`);

  const loaded: OutboxEntryInfo[] = [];
  for (const name of await listDirectory(dir)) {
    const match = NAME_PATTERN.exec(name);
    if (!match) continue;
    const path = join(dir, name);
    const read = await readStored(path);
    if (read === null) continue;
    if ('reason' in read) {
      await setAsideRecordFile(path, read.text, read.reason, log, clock);
      continue;
    }
    if (read.stored.seq !== Number(match[1])) {
      await quarantineFile(path, `it holds report ${read.stored.seq}, whose file name is different`, log, clock);
      continue;
    }
    loaded.push(toInfo(read.stored, read.bytes));
  }
  loaded.sort((a, b) => a.seq - b.seq);
  for (const info of loaded) addToIndex(info);
  let nextSeq = loaded.length > 0 ? loaded[loaded.length - 1]!.seq + 1 : 1;

  // A crash between writing a newer report and removing the one it supersedes leaves both.
  let superseded = 0;
  const lastSeqOfJob = new Map(loaded.map((info) => [info.jobId, info.seq]));
  for (const info of loaded) {
    if (!info.final && lastSeqOfJob.get(info.jobId)! > info.seq) {
      await dropEntry(info.seq);
      superseded += 1;
    }
  }
  if (superseded > 0) log.debug(`outbox: removed ${superseded} progress report(s) superseded by newer reports of the same job`);
  await enforceBounds();
  if (index.size > 0) {
    log.info(`outbox holds ${index.size} report(s) from before the restart; delivering them in order`, {
      reports: index.size,
      bytes: totalBytes,
    });
  }

  function hasPendingFinal(jobId: string): boolean {
    return (jobs.get(jobId)?.finals ?? 0) > 0;
  }

  async function readStored(path: string): Promise<{ stored: StoredOutboxEntry; bytes: number } | { reason: string; text: string } | null> {
    const text = await readTextIfExists(path);
    if (text === null) return null;
    const checked = checkJson(text, validateOutboxEntry);
    if ('reason' in checked) return { reason: checked.reason, text };
    return { stored: checked.value, bytes: Buffer.byteLength(text) };
  }

  // The body of a waiting report; a file that went bad or away since open is set aside (said why) and forgotten.
  async function readBody(info: OutboxEntryInfo): Promise<StatusReport | undefined> {
    const body = inMemory.get(info.seq);
    if (body !== undefined) return structuredClone(body);
    const path = pathFor(info.seq);
    const read = await readStored(path);
    if (read !== null && !('reason' in read)) return read.stored.report;
    if (read !== null) await quarantineFile(path, read.reason, log, clock);
    else log.warn(`outbox report ${path} disappeared from disk; skipping it`, { jobId: info.jobId });
    forgetInIndex(info);
    return undefined;
  }

  function addToIndex(info: OutboxEntryInfo): void {
    index.set(info.seq, info);
    totalBytes += info.bytes;
    const job = jobs.get(info.jobId) ?? { progress: [], finals: 0 };
    if (info.final) {
      job.finals += 1;
      totalFinals += 1;
    } else {
      job.progress.push(info.seq);
    }
    jobs.set(info.jobId, job);
  }

  function forgetInIndex(info: OutboxEntryInfo): void {
    index.delete(info.seq);
    totalBytes -= info.bytes;
    const job = jobs.get(info.jobId);
    if (!job) return;
    if (info.final) {
      job.finals -= 1;
      totalFinals -= 1;
    } else {
      job.progress = job.progress.filter((seq) => seq !== info.seq);
    }
    if (job.finals === 0 && job.progress.length === 0) jobs.delete(info.jobId);
  }

  async function dropEntry(seq: number): Promise<void> {
    const info = index.get(seq);
    if (!info) return;
    if (!inMemory.delete(seq)) await removeFileDurable(pathFor(seq));
    forgetInIndex(info);
  }

  async function enforceBounds(): Promise<void> {
    const isOver = (): boolean => index.size > maxReports || totalBytes > maxBytes;
    if (!isOver()) {
      overBoundWarned = false;
      return;
    }
    let dropped = 0;
    if (index.size > totalFinals) {
      for (const info of [...index.values()]) {
        if (!isOver()) break;
        if (info.final) continue;
        await dropEntry(info.seq);
        dropped += 1;
      }
    }
    const bound = `${maxReports} reports / ${maxBytes} bytes`;
    if (dropped > 0) {
      // once per episode of being full: while it lasts, every progress tick drops one more
      const message = `outbox is full (bound ${bound}) because the cloud has not accepted reports; dropped the ${dropped} oldest progress report(s) to make room; final reports are kept`;
      if (droppedInEpisode === 0) log.warn(message, { dropped, reports: index.size, bytes: totalBytes });
      else log.debug(message, { dropped, reports: index.size, bytes: totalBytes });
      droppedInEpisode += dropped;
    }
    if (!isOver()) {
      overBoundWarned = false;
      return;
    }
    if (!overBoundWarned) {
      overBoundWarned = true;
      log.warn(
        `outbox holds ${index.size} final report(s) in ${totalBytes} bytes, over its bound of ${bound}; final reports are never dropped, so it stays over the bound until the cloud accepts them`,
        { reports: index.size, bytes: totalBytes },
      );
    }
  }

  return {
    enqueue: (jobId, report) =>
      queue.run(async () => {
        const final = isFinalStatus(report.status);
        if (!final && hasPendingFinal(jobId)) {
          log.debug('outbox: dropped a progress report queued after the final report of its job', { jobId });
          return null;
        }
        const stored: StoredOutboxEntry = {
          version: OUTBOX_VERSION,
          seq: nextSeq,
          jobId,
          final,
          enqueuedAt: new Date(clock.now()).toISOString(),
          report: structuredClone(report),
        };
        const text = JSON.stringify(stored);
        if (final) await createFileDurable(pathFor(stored.seq), text, STATE_FILE_MODE);
        else inMemory.set(stored.seq, stored.report);
        nextSeq += 1;
        const info = toInfo(stored, Buffer.byteLength(text));
        addToIndex(info);
        for (const seq of jobs.get(jobId)?.progress ?? []) if (seq < info.seq) await dropEntry(seq);
        await enforceBounds();
        const woken = waiters;
        waiters = [];
        for (const wake of woken) wake();
        return index.has(info.seq) ? { ...info, report: structuredClone(report) } : null;
      }),
    next: () =>
      queue.run(async () => {
        // deleting the current key while iterating a Map is safe
        for (const info of index.values()) {
          const report = await readBody(info);
          if (report !== undefined) return { ...info, report };
        }
        return undefined;
      }),
    ack: (seq) =>
      queue.run(async () => {
        if (!index.has(seq)) return false;
        await dropEntry(seq);
        // the cloud takes reports again: a later full outbox is a new episode worth a warning
        if (index.size <= maxReports && totalBytes <= maxBytes) {
          overBoundWarned = false;
          droppedInEpisode = 0;
        }
        return true;
      }),
    stats: () => {
      const first = index.values().next();
      return {
        count: index.size,
        finals: totalFinals,
        bytes: totalBytes,
        oldestEnqueuedAt: first.done ? null : Date.parse(first.value.enqueuedAt),
      };
    },
    hasPendingFinal,
    pendingFinal: (jobId) =>
      queue.run(async () => {
        const info = [...index.values()].find((i) => i.final && i.jobId === jobId);
        return info === undefined ? undefined : readBody(info);
      }),
    entries: () => [...index.values()].map((i) => ({ ...i })),
    waitForEntry: (signal) =>
      new Promise<void>((resolve, reject) => {
        if (signal?.aborted) {
          reject(new AbortedError());
          return;
        }
        if (index.size > 0) {
          resolve();
          return;
        }
        const onAbort = (): void => {
          waiters = waiters.filter((w) => w !== wake);
          reject(new AbortedError());
        };
        const wake = (): void => {
          signal?.removeEventListener('abort', onAbort);
          resolve();
        };
        waiters.push(wake);
        signal?.addEventListener('abort', onAbort, { once: true });
      }),
  };
}

function toInfo(stored: StoredOutboxEntry, bytes: number): OutboxEntryInfo {
  return {
    seq: stored.seq,
    jobId: stored.jobId,
    final: stored.final,
    status: stored.report.status,
    enqueuedAt: stored.enqueuedAt,
    bytes,
  };
}

/** Validates an outbox file's content. */
function validateOutboxEntry(value: unknown): StoredOutboxEntry {
  const r = expectRecord(value, 'outbox entry');
  expectVersion(r, OUTBOX_VERSION);
  const report = validateStatusReport(r.report);
  const final = expectBoolean(r, 'final');
  if (final !== isFinalStatus(report.status)) failValidation(`final: ${final} does not match status ${report.status}`);
  return {
    version: OUTBOX_VERSION,
    seq: expectInteger(r, 'seq', 1),
    jobId: expectNonEmptyString(r, 'jobId'),
    final,
    enqueuedAt: expectTimestamp(r, 'enqueuedAt'),
    report,
  };
}
