// History: the last N finished jobs with their final reports, so `cloudjobs
// history` can show them and a re-offered job id is answered with the stored
// final report instead of running the job again.
//
// One file per job (`history/<key>.json`, key = encodeFileKey(jobId)) rather
// than one file rewritten: adding a job writes one report (bounded by
// max_output) instead of rewriting up to N of them on an SD card, trimming is
// an unlink, and a corrupt file costs one entry, not the whole history.
//
// INVARIANTS
// - Order is by a stored sequence number, not by time: a Pi without a
//   real-time clock may finish a job "before" an older one.
// - add() writes the new file before trimming; a crash in between leaves N+1
//   files, which the next open trims.
// - Memory holds summaries only; reports are read from disk on get()/list().
// - A read-only history (for the CLI while the agent runs) never writes,
//   quarantines or removes anything: the agent owns the directory.
// - Bounded in bytes as well as entries: after add() the files' total is at
//   most maxBytes (oldest entries go first; the newest is always kept; while
//   add() runs, the new file may stand beside the ones it pushes out). No
//   entry is larger than a quarter of maxBytes (a larger report is stored with
//   its output cut by fitReport, which says so in status_details.truncated),
//   unless its names alone leave less than fitReport's minimum.
import { join } from 'node:path';
import type { Clock } from '../clock/clock.js';
import { fitReport, serializedBytes } from '../contract/fit-report.js';
import type { JobStatus, StatusReport } from '../contract/types.js';
import { AgentError } from '../errors/errors.js';
import type { Log } from '../log/log.js';
import {
  ensurePrivateDir,
  listDirectory,
  removeFileDurable,
  removeStaleTempFiles,
  createFileDurable,
} from './atomic-file.js';
import { encodeFileKey, isFileKeyName } from './file-key.js';
import { checkJson, quarantineFile, readTextIfExists, setAsideRecordFile, STATE_FILE_MODE } from './json-file.js';
import { createSerialQueue } from './serial-queue.js';
import { resolveStatePaths } from './state-paths.js';
import { expectInteger, expectRecord, expectString, expectTimestamp, expectVersion } from './validate.js';
import { validateStatusReport } from './validate-records.js';

const HISTORY_VERSION = 1;
const SUFFIX = '.json';

/** What the agent records when a job is finished. */
export interface FinishedJob {
  jobId: string;
  jobName: string;
  /** ISO time the offer was received. */
  receivedAt: string;
  /** ISO time the final report was made. */
  finishedAt: string;
  report: StatusReport;
}

/** A finished job as stored. */
export interface HistoryEntry extends FinishedJob {
  version: 1;
  seq: number;
}

/** What memory keeps of each entry. */
export interface HistorySummary {
  seq: number;
  jobId: string;
  jobName: string;
  status: JobStatus;
  reason: string;
  receivedAt: string;
  finishedAt: string;
  /** Size of its file in bytes. */
  bytes: number;
}

/** The bounded history of finished jobs. */
export interface History {
  /** Stores a finished job (replacing an older entry of the same id) and trims to the bound. */
  add(job: FinishedJob): Promise<HistoryEntry>;
  /** The stored entry of `jobId`, with its final report. */
  get(jobId: string): Promise<HistoryEntry | undefined>;
  /** Whether `jobId` is in the history (no disk I/O). */
  has(jobId: string): boolean;
  /** Up to `limit` entries, newest first, with reports. */
  list(limit?: number): Promise<HistoryEntry[]>;
  /** Up to `limit` summaries, newest first (no disk I/O). */
  summaries(limit?: number): HistorySummary[];
}

/** Options for openHistory. */
export interface HistoryOptions {
  stateDir: string;
  /** `[agent] history_size`. */
  size: number;
  /** `[agent] history_max_bytes`; unbounded when absent (a read-only CLI view). */
  maxBytes?: number;
  log: Log;
  clock: Clock;
  /** Only read: for a CLI reading the directory of a running agent. */
  readOnly?: boolean;
}

/** Opens the history under `stateDir/history`. */
export async function openHistory(options: HistoryOptions): Promise<History> {
  const { log, clock, size } = options;
  const maxBytes = options.maxBytes ?? Number.POSITIVE_INFINITY;
  // what one entry may take: a quarter of the budget, so a few large jobs never push out all others
  const entryBudget = Math.floor(maxBytes / 4);
  const readOnly = options.readOnly ?? false;
  const paths = resolveStatePaths(options.stateDir);
  const dir = paths.historyDir;
  if (!readOnly) {
    await ensurePrivateDir(paths.stateDir);
    await ensurePrivateDir(dir);
    await removeStaleTempFiles(dir);
  }
  const pathFor = (jobId: string): string => join(dir, `${encodeFileKey(jobId)}${SUFFIX}`);

  // jobId -> summary; kept sorted by seq ascending on every change
  const index = new Map<string, HistorySummary>();
  for (const name of await listDirectory(dir)) {
    if (!isFileKeyName(name, SUFFIX)) continue;
    const path = join(dir, name);
    const read = await readEntry(path);
    if (read === null) continue;
    if ('reason' in read || `${encodeFileKey(read.entry.jobId)}${SUFFIX}` !== name) {
      const reason = 'reason' in read ? read.reason : 'it holds a job whose file name is different';
      if (readOnly) log.warn(`history file ${path} is unreadable (${reason}); skipped it`, { file: path });
      else if ('reason' in read) await setAsideRecordFile(path, read.text, reason, log, clock);
      else await quarantineFile(path, reason, log, clock);
      continue;
    }
    const previous = index.get(read.entry.jobId);
    if (!previous || previous.seq < read.entry.seq) index.set(read.entry.jobId, summarize(read.entry, read.bytes));
  }
  let ordered = [...index.values()].sort((a, b) => a.seq - b.seq);
  let nextSeq = ordered.length > 0 ? ordered[ordered.length - 1]!.seq + 1 : 1;
  const queue = createSerialQueue();
  if (!readOnly) await trim();

  async function readEntry(path: string): Promise<{ entry: HistoryEntry; bytes: number } | { reason: string; text: string } | null> {
    const text = await readTextIfExists(path);
    if (text === null) return null;
    const checked = checkJson(text, validateHistoryEntry);
    return 'reason' in checked ? { reason: checked.reason, text } : { entry: checked.value, bytes: Buffer.byteLength(text) };
  }

  async function trim(): Promise<void> {
    let total = ordered.reduce((sum, s) => sum + s.bytes, 0);
    while (ordered.length > size || (total > maxBytes && ordered.length > 1)) {
      const oldest = ordered.shift()!;
      await removeFileDurable(pathFor(oldest.jobId));
      index.delete(oldest.jobId);
      total -= oldest.bytes;
    }
  }

  // The entry as stored: a report over the per-entry budget keeps its output cut.
  function boundEntry(entry: HistoryEntry): { entry: HistoryEntry; text: string } {
    const text = JSON.stringify(entry);
    const bytes = Buffer.byteLength(text);
    if (bytes <= entryBudget) return { entry, text };
    const wrapper = bytes - serializedBytes(entry.report);
    const report = fitReport(entry.report, entryBudget - wrapper).report;
    const bounded = { ...entry, report };
    return { entry: bounded, text: JSON.stringify(bounded) };
  }

  async function load(summary: HistorySummary): Promise<HistoryEntry | undefined> {
    const path = pathFor(summary.jobId);
    const read = await readEntry(path);
    if (read !== null && !('reason' in read)) return read.entry;
    if (read !== null) {
      if (readOnly) {
        log.warn(`history file ${path} is unreadable (${read.reason}); skipped it`, { file: path });
        return undefined;
      }
      await quarantineFile(path, read.reason, log, clock);
    }
    index.delete(summary.jobId);
    ordered = ordered.filter((s) => s.jobId !== summary.jobId);
    return undefined;
  }

  const newestFirst = (limit: number): HistorySummary[] => (limit > 0 ? ordered.slice(-limit).reverse() : []);

  return {
    add: (job) =>
      queue.run(async () => {
        if (readOnly) throw new AgentError('STATE_IO', 'this history was opened read-only');
        const { entry, text } = boundEntry({ version: HISTORY_VERSION, seq: nextSeq, ...structuredClone(job) });
        await createFileDurable(pathFor(job.jobId), text, STATE_FILE_MODE);
        nextSeq += 1;
        ordered = ordered.filter((s) => s.jobId !== job.jobId);
        const summary = summarize(entry, Buffer.byteLength(text));
        ordered.push(summary);
        index.set(job.jobId, summary);
        await trim();
        return structuredClone(entry);
      }),
    get: (jobId) =>
      queue.run(async () => {
        const summary = index.get(jobId);
        return summary ? load(summary) : undefined;
      }),
    has: (jobId) => index.has(jobId),
    list: (limit = size) =>
      queue.run(async () => {
        const out: HistoryEntry[] = [];
        for (const summary of newestFirst(limit)) {
          const entry = await load(summary);
          if (entry) out.push(entry);
        }
        return out;
      }),
    summaries: (limit = size) => newestFirst(limit).map((s) => ({ ...s })),
  };
}

function summarize(entry: HistoryEntry, bytes: number): HistorySummary {
  return {
    bytes,
    seq: entry.seq,
    jobId: entry.jobId,
    jobName: entry.jobName,
    status: entry.report.status,
    reason: entry.report.reason,
    receivedAt: entry.receivedAt,
    finishedAt: entry.finishedAt,
  };
}

/** Validates a history file's content. */
function validateHistoryEntry(value: unknown): HistoryEntry {
  const r = expectRecord(value, 'history entry');
  expectVersion(r, HISTORY_VERSION);
  return {
    version: HISTORY_VERSION,
    seq: expectInteger(r, 'seq', 1),
    // may be empty: a refused offer with an empty id is kept too (agent.ts refuseOffer)
    jobId: expectString(r, 'jobId'),
    jobName: expectString(r, 'jobName'),
    receivedAt: expectTimestamp(r, 'receivedAt'),
    finishedAt: expectTimestamp(r, 'finishedAt'),
    report: validateStatusReport(r.report),
  };
}
