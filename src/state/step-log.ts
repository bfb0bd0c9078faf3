// The per-step part of a job's journal entry: an append-only file of JSON
// lines next to the entry (`<key>.steps`), one line per step start or end.
// Rewriting the whole entry per step (temp file + rename) cost a rename that
// ext4 turns into a data flush when it replaces a file (auto_da_alloc): about
// 1 ms per step on the benchmark machine, and SD-card writes on a Pi. An
// append is one write(2) to the page cache.
//
// INVARIANTS
// - A record is one line written by one write(2) of the whole line with its
//   newline. A crash (kill -9, power loss) can only leave the last line
//   without its newline or cut short: readers drop such a tail, never the
//   lines before it.
// - Not fsynced: the entry's begin and final are (journal.ts); after a power
//   loss the log can lose its last records, never hold a torn one in the middle.
// - A complete line that does not parse is corruption (not a torn tail): the
//   reader says so and returns the records before it.
import { closeSync, constants, openSync, writeSync } from 'node:fs';
import { readTextIfExists } from './json-file.js';
import { describeIoError } from './atomic-file.js';

/** One line of the log. */
export type StepLogRecord =
  | { type: 'start'; index: number; total: number; name: string; startedAt: string }
  | { type: 'end'; index: number; result: unknown };

/** An open log of one job. */
export interface StepLogWriter {
  /** Appends one record (blocking: one small write to the page cache). Throws STATE_IO on failure. */
  append(record: StepLogRecord): void;
  close(): void;
}

/**
 * Opens (creating, mode 0600) the log at `path` for appending. Each append
 * opens, writes and closes: no file stays open for writing between steps, so
 * `mount -o remount,ro` of state_dir is not refused with EBUSY because of the
 * agent (an open(2) and close(2) cost microseconds, a step far more).
 */
export function openStepLog(path: string, mode = 0o600): StepLogWriter {
  return {
    append(record) {
      const line = Buffer.from(`${JSON.stringify(record)}\n`);
      let fd: number | null = null;
      try {
        fd = openSync(path, constants.O_WRONLY | constants.O_CREAT | constants.O_APPEND, mode);
        let written = 0;
        while (written < line.length) written += writeSync(fd, line, written, line.length - written);
      } catch (error) {
        throw describeIoError('append a step record to', path, error);
      } finally {
        if (fd !== null) closeQuietly(fd);
      }
    },
    close() {
      // nothing stays open between appends
    },
  };
}

// Closing can only fail for a bad fd: the write before it succeeded or threw.
function closeQuietly(fd: number): void {
  try {
    closeSync(fd);
  } catch {
    // nothing is lost either way
  }
}

/** What a log holds: its complete records, and why reading stopped early, if it did. */
export interface StepLogContent {
  records: StepLogRecord[];
  /** A torn last line (a crash mid-append): dropped, not a problem. */
  tornTail: boolean;
  /** A complete line that is not a record: corruption; `records` holds the lines before it. */
  problem: string | null;
}

/** Reads the log at `path`; a missing file is an empty log. `validateResult` checks an end record's result. */
export async function readStepLog(path: string, validateResult: (value: unknown, where: string) => unknown): Promise<StepLogContent> {
  const text = (await readTextIfExists(path)) ?? '';
  const lines = text.split('\n');
  const tail = lines.pop() ?? '';
  const records: StepLogRecord[] = [];
  for (const [i, line] of lines.entries()) {
    const record = parseRecord(line, validateResult, `line ${i + 1}`);
    if (typeof record === 'string') return { records, tornTail: false, problem: record };
    records.push(record);
  }
  return { records, tornTail: tail.length > 0, problem: null };
}

function parseRecord(line: string, validateResult: (value: unknown, where: string) => unknown, where: string): StepLogRecord | string {
  let raw: unknown;
  try {
    raw = JSON.parse(line);
  } catch (error) {
    return `${where}: ${error instanceof Error ? error.message : String(error)}`;
  }
  if (raw === null || typeof raw !== 'object') return `${where}: not an object`;
  const r = raw as Record<string, unknown>;
  const index = r.index;
  if (typeof index !== 'number' || !Number.isInteger(index) || index < 0) return `${where}: index must be a non-negative integer`;
  if (r.type === 'start') {
    const { total, name, startedAt } = r;
    if (typeof total !== 'number' || !Number.isInteger(total) || total <= index) return `${where}: total must be an integer above index`;
    if (typeof name !== 'string') return `${where}: name must be a string`;
    if (typeof startedAt !== 'string' || Number.isNaN(Date.parse(startedAt))) return `${where}: startedAt must be a timestamp`;
    return { type: 'start', index, total, name, startedAt };
  }
  if (r.type === 'end') {
    try {
      return { type: 'end', index, result: validateResult(r.result, `${where}.result`) };
    } catch (error) {
      return error instanceof Error ? error.message : String(error);
    }
  }
  return `${where}: type must be "start" or "end"`;
}
