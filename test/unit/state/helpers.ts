// Shared fixtures for the state tests: real temp dirs, a log that records, sample records.
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach } from 'vitest';
import type { JobOffer, StatusReport } from '../../../src/contract/types.js';
import type { StepResult } from '../../../src/jobs/types.js';
import type { Log, LogFields } from '../../../src/log/log.js';
import { createStepResult } from '../../../src/jobs/step-result.js';
import type { BootIdentity } from '../../../src/state/boot-identity.js';

/** One recorded log call. */
export interface LogRecord {
  level: 'error' | 'warn' | 'info' | 'debug';
  message: string;
  fields: LogFields | undefined;
}

/** A Log that keeps every call, for exact assertions. */
export interface RecordingLog extends Log {
  records: LogRecord[];
  messages(level: LogRecord['level']): string[];
}

/** Creates a RecordingLog. */
export function createRecordingLog(): RecordingLog {
  const records: LogRecord[] = [];
  const at =
    (level: LogRecord['level']) =>
    (message: string, fields?: LogFields): void => {
      records.push({ level, message, fields });
    };
  const log: RecordingLog = {
    records,
    messages: (level) => records.filter((r) => r.level === level).map((r) => r.message),
    error: at('error'),
    warn: at('warn'),
    info: at('info'),
    debug: at('debug'),
    child: () => log,
  };
  return log;
}

const made: string[] = [];
afterEach(async () => {
  for (const dir of made.splice(0)) await rm(dir, { recursive: true, force: true });
});

/**
 * Creates a temp dir removed after the test. `onTmpfs` puts it on /dev/shm when
 * there is one: the truncation loops open a store thousands of times, and on
 * tmpfs fsync costs nothing while the code path stays the same.
 */
export async function makeTempDir(options: { onTmpfs?: boolean } = {}): Promise<string> {
  const base = options.onTmpfs && existsSync('/dev/shm') ? '/dev/shm' : tmpdir();
  const dir = await mkdtemp(join(base, 'cloudjobs-state-'));
  made.push(dir);
  return dir;
}

/** 2026-11-28T10:00:00.000Z in ms. */
export const T0 = Date.parse('2026-11-28T10:00:00.000Z');

/** A boot identity for journal entries (boot-identity.ts). */
export const BOOT: BootIdentity = { bootId: '3f0c8f4e-6a8b-4d0e-9f6e-0a1b2c3d4e5f', marker: 'marker-of-boot-1' };

/** A status report with every field set. */
export function makeReport(status: StatusReport['status'], reason = `${status} report`): StatusReport {
  return {
    status,
    exit_code: status === 'SUCCEEDED' ? 0 : status === 'IN_PROGRESS' ? null : 3,
    stdout: 'out ünïcode\n',
    stderr: '',
    reason,
    executed_steps: 2,
    failed_step: status === 'FAILED' ? 'Check Disk' : null,
    status_details: { steps: [{ name: 'a', exitCode: 0 }] },
  };
}

/** A job offer. */
export function makeOffer(jobId: string, jobName = 'Restart Redis'): JobOffer {
  return {
    jobId,
    jobName,
    timeoutSeconds: 3600,
    createdAt: '2026-11-28T09:59:00.000Z',
    document: { version: '1.0', includeStdOut: true, steps: [{ name: 'a', type: 'runCommand', input: { command: 'df,-h' } }] },
  };
}

/** A step result. */
export function makeStepResult(name: string, exitCode = 0): StepResult {
  return createStepResult(
    { name, argv: ['df', '-h'], handler: null, user: 'cloudjobs-run', startedAt: '2026-11-28T10:00:01.000Z' },
    {
      exitCode,
      durationMs: 12,
      stdout: 'Filesystem Size\n',
      stdoutBytes: 16,
      failed: exitCode !== 0,
      failureReason: exitCode === 0 ? null : `exited with code ${exitCode}`,
    },
  );
}

/** Ids a server could send that must not escape or break a state directory. */
export const HOSTILE_JOB_IDS: readonly string[] = [
  '/',
  '../../etc/passwd',
  '..',
  '.',
  'a\u0000b',
  'x'.repeat(10 * 1024),
  'dir/sub/../job',
  'ünïcode-☃',
  ' ',
];

/**
 * Truncates the state file at `path` to every length from 0 to full size - 1
 * and runs `open` on each: every time exactly one warning must name the file,
 * the file must be moved aside (not deleted), and `open` must succeed.
 */
export async function checkEveryTruncation(
  path: string,
  full: Buffer,
  open: (log: RecordingLog) => Promise<void>,
  options: { emptyRemoved?: boolean } = {},
): Promise<number> {
  const { readdir, readFile, rm, writeFile } = await import('node:fs/promises');
  const { basename, dirname, join: joinPath } = await import('node:path');
  const dir = dirname(path);
  let checked = 0;
  for (let length = 0; length < full.length; length += 1) {
    const cut = full.subarray(0, length);
    await writeFile(path, cut);
    const log = createRecordingLog();
    await open(log);
    const warnings = log.messages('warn');
    if (length === 0 && options.emptyRemoved === true) {
      // a record file created in place (createFileDurable): empty is a creation a crash cut short
      const removed = `removed the empty state file ${path}: a record whose writing a crash or power cut interrupted before it was acknowledged`;
      if (warnings.length !== 0 || !log.messages('info').includes(removed)) throw new Error(`length 0: expected only "${removed}", got ${JSON.stringify(log.records)}`);
      if ((await readdir(dir)).some((n) => n.startsWith(basename(path)))) throw new Error(`length 0: ${path} was not removed`);
      checked += 1;
      continue;
    }
    const prefix = `state file ${path} is corrupt (`;
    if (warnings.length !== 1 || !warnings[0]!.startsWith(prefix) || !warnings[0]!.endsWith('and went on without it')) {
      throw new Error(`length ${length}: expected one quarantine warning, got ${JSON.stringify(warnings)}`);
    }
    const names = await readdir(dir);
    if (names.includes(basename(path))) throw new Error(`length ${length}: ${path} was not moved aside`);
    const aside = names.filter((n) => n.startsWith(`${basename(path)}.corrupt-`));
    if (aside.length !== 1) throw new Error(`length ${length}: expected one quarantined file, got ${JSON.stringify(names)}`);
    const kept = await readFile(joinPath(dir, aside[0]!));
    if (!kept.equals(cut)) throw new Error(`length ${length}: the quarantined file does not hold what was there`);
    await rm(joinPath(dir, aside[0]!));
    checked += 1;
  }
  return checked;
}
