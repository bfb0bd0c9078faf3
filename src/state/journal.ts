// The job journal: one file per job that has started and is not yet handed
// over to outbox and history, so a crash never makes a job run twice or vanish.
//
// INVARIANTS
// - begin() returns only after the entry is durably on disk; the agent starts
//   the first process of a job only after begin() resolved. So after any
//   crash a job either has no entry (nothing ran) or has one (it may have run).
// - begin() creates the job's file fsynced (createFileDurable: a crash leaves
//   none or an empty one, removed at open); recordFinal(), recordReboot() and
//   recordResumed() rewrite it atomically and fsynced (writeJsonFile). Step starts and ends are appended to the job's step log
//   (`<key>.steps`, step-log.ts), not fsynced: a crash of the agent (kill -9,
//   OOM) loses none of them, a power loss can lose the last few, never leave a
//   torn one that is read. An fsync or a file replacement per step would cost
//   more than a short step itself (and wear SD cards); after a power loss the
//   job is still reported interrupted, naming an earlier step. So each entry
//   keeps the boot its step log was started in (begin, recordResumed): an
//   interrupted job found in another boot (or in a boot not known) may have
//   run further than its step log says, and its report must say so.
// - Changes go through a serial queue; the in-memory copy changes only after
//   the write succeeded, so memory never claims more than the disk holds.
// - The final entry holds every step, so the step log is deleted after it;
//   a step log next to an entry that has a final is ignored.
// - An entry with `final === null` at open time was interrupted, unless its
//   job's final report is in the outbox or history (the agent puts it there,
//   then remove()s the entry, not fsynced: a crash may bring the entry back);
//   `running` names the step(s) that were running. An entry with a final (the
//   agent records one for an interrupted job at start) was finished but not
//   yet handed to outbox/history: the agent must enqueue the final (outbox
//   de-duplicates nothing, so it checks hasPendingFinal/history first) and only
//   then remove() the entry.
// - A job that asked for a reboot is REBOOTING (a job that caused an agent
//   restart is RESTARTING: the same record, kind 'restart', same rules): recordReboot() writes the
//   whole entry (every step so far, the boot identity, where to go on)
//   atomically and fsynced before the agent reports or reboots, and only then
//   drops the step log. recordResumed() clears it, fsynced, before the next
//   step starts: a crash after that is an interruption like any other, and is
//   never resumed a second time.
// - File names are derived from a hash of the job id (encodeFileKey), never
//   from the id itself, and the id inside the file must match the name.
import { unlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { Clock } from '../clock/clock.js';
import type { JobOffer, StatusReport } from '../contract/types.js';
import { AgentError } from '../errors/errors.js';
import type { StepResult } from '../jobs/types.js';
import type { Log } from '../log/log.js';
import type { BootIdentity } from './boot-identity.js';
import { createFileDurable, describeIoError, ensurePrivateDir, isErrnoCode, listDirectory, removeFileLazily, removeStaleTempFiles } from './atomic-file.js';
import { encodeFileKey, isFileKeyName } from './file-key.js';
import { quarantineFile, readRecordFile, STATE_FILE_MODE, writeJsonFile } from './json-file.js';
import { createSerialQueue } from './serial-queue.js';
import { openStepLog, readStepLog, type StepLogRecord, type StepLogWriter } from './step-log.js';
import { resolveStatePaths } from './state-paths.js';
import {
  expectArray,
  expectInteger,
  expectNonEmptyString,
  expectNullableString,
  expectRecord,
  expectString,
  expectTimestamp,
  expectVersion,
  failValidation,
} from './validate.js';
import { validateJobOffer, validateStatusReport, validateStepResult } from './validate-records.js';

const JOURNAL_VERSION = 1;
const SUFFIX = '.json';
const STEP_LOG_SUFFIX = '.steps';

/** A step that had started and not finished when the entry was last written. */
export interface RunningStep {
  /** 0-based position of the step in the job. */
  index: number;
  /** Number of steps in the job (so "step index+1 of total"). */
  total: number;
  name: string;
  startedAt: string;
}

/** A finished step's result at its 0-based position. */
export interface RecordedStep {
  index: number;
  result: StepResult;
}

/**
 * A reboot a job asked for, journaled before the agent reboots (the job is
 * REBOOTING), or an agent restart the job caused, journaled before the agent
 * exits (RESTARTING: kind 'restart'; the next agent process goes on with it).
 */
export interface RebootingRecord {
  /** 'reboot' waits for a new boot; 'restart' for a new agent process. @default 'reboot' (also in files from before restarts) */
  kind?: 'reboot' | 'restart';
  /** The agent version that journaled it (a restart may be an upgrade: the report says from and to). */
  agentVersion?: string;
  /** ISO wall-clock time of the request. */
  requestedAt: string;
  /** The boot the request was made in (boot-identity.ts). */
  bootId: string | null;
  marker: string;
  /** Top-level step to go on with after the boot, 0-based; steps.length is the finalStep, more is nothing left. */
  resumeAt: number;
  /** The step that asked, e.g. 'step 2 ("Reboot")', for messages. */
  stepLabel: string;
}

/** One job's journal file. */
export interface JournalEntry {
  version: 1;
  jobId: string;
  jobName: string;
  offer: JobOffer;
  /** ISO time the offer was received. */
  receivedAt: string;
  /** Finished steps, sorted by index. */
  steps: RecordedStep[];
  /** Steps running when last written, sorted by index (more than one inside a parallel group). */
  running: RunningStep[];
  final: StatusReport | null;
  finishedAt: string | null;
  /** Reboots the job asked for and got so far (absent in files from before reboots: 0). */
  reboots: number;
  /** Set while the job is REBOOTING; null otherwise. */
  rebooting: RebootingRecord | null;
  /**
   * The boot the step log was started in (begin, recordResumed); null when not
   * known (a file from before this field, or the boot could not be read).
   */
  boot: BootIdentity | null;
}

/** The job journal. */
export interface Journal {
  /** Records a job, in `boot`, before its first process starts; fails if the job is already journaled. */
  begin(offer: JobOffer, receivedAt: number, boot: BootIdentity | null): Promise<JournalEntry>;
  /** Records that step `index` (0-based) of `total` started (atomic; not fsynced: survives a crash, maybe not power loss). */
  recordStepStart(jobId: string, index: number, total: number, name: string): Promise<void>;
  /** Records a step's result and clears it from the running steps. */
  recordStep(jobId: string, index: number, result: StepResult): Promise<void>;
  /** Marks the job REBOOTING (or RESTARTING), durably, with every step so far; counts a reboot. */
  recordReboot(jobId: string, record: RebootingRecord): Promise<void>;
  /** Marks a REBOOTING job running again in `boot`, durably, before its next step starts. */
  recordResumed(jobId: string, boot: BootIdentity | null): Promise<void>;
  /** Records the final report; must be on disk before the report is enqueued or sent. */
  recordFinal(jobId: string, report: StatusReport): Promise<void>;
  /** Forgets a job once its final is durably in the outbox and history (not fsynced itself); missing is fine. */
  remove(jobId: string): Promise<void>;
  /** The entry of one job. */
  get(jobId: string): JournalEntry | undefined;
  /** Every entry, oldest received first (at open: the jobs to recover). */
  list(): JournalEntry[];
  /** Resolves when every write queued so far has settled. */
  flush(): Promise<void>;
}

/** Options for openJournal. */
export interface JournalOptions {
  stateDir: string;
  log: Log;
  clock: Clock;
}

/** Opens the journal under `stateDir/journal`, loading (and quarantining) what a previous run left. */
export async function openJournal(options: JournalOptions): Promise<Journal> {
  const { log, clock } = options;
  const paths = resolveStatePaths(options.stateDir);
  const dir = paths.journalDir;
  await ensurePrivateDir(paths.stateDir);
  await ensurePrivateDir(dir);
  await removeStaleTempFiles(dir);

  const entries = new Map<string, JournalEntry>();
  const names = await listDirectory(dir);
  for (const name of names) {
    if (!isFileKeyName(name, SUFFIX)) continue;
    const path = join(dir, name);
    // an empty file is a begin() a crash cut short, never acknowledged: removed
    const entry = await readRecordFile(path, validateJournalEntry, log, clock);
    if (entry === null) continue;
    if (fileNameFor(entry.jobId) !== name) {
      await quarantineFile(path, `it holds job ${JSON.stringify(entry.jobId.slice(0, 80))}, whose file name is different`, log, clock);
      continue;
    }
    entries.set(entry.jobId, entry.final === null ? await replayStepLog(entry, stepLogFor(entry.jobId)) : entry);
  }
  // a step log without its entry (quarantined, or removed before its log): nothing can use it
  const known = new Set([...entries.keys()].map((jobId) => `${encodeFileKey(jobId)}${STEP_LOG_SUFFIX}`));
  for (const name of names) {
    if (isFileKeyName(name, STEP_LOG_SUFFIX) && !known.has(name)) {
      await quarantineFile(join(dir, name), 'it is the step log of a job the journal does not hold', log, clock);
    }
  }

  // the step records of an interrupted job, applied in the order they were written
  async function replayStepLog(entry: JournalEntry, path: string): Promise<JournalEntry> {
    const content = await readStepLog(path, validateStepResult);
    let next = entry;
    for (const record of content.records) {
      next = record.type === 'start' ? withStepStarted(next, record) : withStepEnded(next, record.index, record.result as StepResult);
    }
    if (content.problem !== null) {
      await quarantineFile(path, `${content.problem}; kept the ${content.records.length} record(s) before it`, log, clock);
    }
    return next;
  }

  const queue = createSerialQueue();
  const pathFor = (jobId: string): string => join(dir, fileNameFor(jobId));
  function stepLogFor(jobId: string): string {
    return join(dir, `${encodeFileKey(jobId)}${STEP_LOG_SUFFIX}`);
  }
  const stepLogs = new Map<string, StepLogWriter>();

  const current = (jobId: string): JournalEntry => {
    const entry = entries.get(jobId);
    if (!entry) throw new AgentError('STATE_IO', `job ${jobId} is not in the journal; begin() must come first`);
    return entry;
  };

  // Entries are never mutated: a change builds the next entry from shallow
  // copies, so unchanged parts (the offer, earlier step results) are shared.
  const appendStep = (jobId: string, record: StepLogRecord, next: (entry: JournalEntry) => JournalEntry): Promise<void> =>
    queue.run(async () => {
      const entry = current(jobId);
      let writer = stepLogs.get(jobId);
      if (!writer) {
        writer = openStepLog(stepLogFor(jobId));
        stepLogs.set(jobId, writer);
      }
      writer.append(record);
      entries.set(jobId, next(entry));
    });

  const forgetStepLog = async (jobId: string): Promise<void> => {
    stepLogs.get(jobId)?.close();
    stepLogs.delete(jobId);
    const path = stepLogFor(jobId);
    await unlink(path).catch((error: unknown) => {
      if (!isErrnoCode(error, 'ENOENT')) throw describeIoError('remove', path, error);
    });
  };

  return {
    begin: (offer, receivedAt, boot) =>
      queue.run(async () => {
        if (entries.has(offer.jobId)) {
          throw new AgentError('STATE_IO', `job ${offer.jobId} is already in the journal; it must not run twice`);
        }
        const entry: JournalEntry = {
          version: JOURNAL_VERSION,
          jobId: offer.jobId,
          jobName: offer.jobName,
          offer: structuredClone(offer),
          receivedAt: new Date(receivedAt).toISOString(),
          steps: [],
          running: [],
          final: null,
          finishedAt: null,
          reboots: 0,
          rebooting: null,
          boot: boot && { ...boot },
        };
        await createFileDurable(pathFor(offer.jobId), JSON.stringify(entry), STATE_FILE_MODE);
        entries.set(offer.jobId, entry);
        return structuredClone(entry);
      }),
    recordStepStart: (jobId, index, total, name) => {
      const record = { type: 'start' as const, index, total, name, startedAt: new Date(clock.now()).toISOString() };
      return appendStep(jobId, record, (entry) => withStepStarted(entry, record));
    },
    recordStep: (jobId, index, result) => {
      const copy = structuredClone(result);
      return appendStep(jobId, { type: 'end', index, result: copy }, (entry) => withStepEnded(entry, index, copy));
    },
    recordReboot: (jobId, record) =>
      queue.run(async () => {
        const entry = current(jobId);
        const reboots = entry.reboots + (record.kind === 'restart' ? 0 : 1);
        const next: JournalEntry = { ...entry, running: [], reboots, rebooting: { ...record } };
        await writeJsonFile(pathFor(jobId), next);
        entries.set(jobId, next);
        // the entry now holds every step: the log is no longer needed
        await forgetStepLog(jobId);
      }),
    recordResumed: (jobId, boot) =>
      queue.run(async () => {
        const next: JournalEntry = { ...current(jobId), rebooting: null, boot: boot && { ...boot } };
        await writeJsonFile(pathFor(jobId), next);
        entries.set(jobId, next);
      }),
    recordFinal: (jobId, report) =>
      queue.run(async () => {
        const next: JournalEntry = {
          ...current(jobId),
          final: structuredClone(report),
          finishedAt: new Date(clock.now()).toISOString(),
          running: [],
          rebooting: null,
        };
        await writeJsonFile(pathFor(jobId), next);
        entries.set(jobId, next);
        // the final entry holds every step: the log is no longer needed (and ignored if a crash keeps it)
        await forgetStepLog(jobId);
      }),
    remove: (jobId) =>
      queue.run(async () => {
        await forgetStepLog(jobId);
        // not fsynced: the job's final report is durably in the outbox and history first, so an
        // entry a crash brings back is only removed again at start (job-path.ts recover)
        await removeFileLazily(pathFor(jobId));
        entries.delete(jobId);
      }),
    get: (jobId) => {
      const entry = entries.get(jobId);
      return entry ? structuredClone(entry) : undefined;
    },
    list: () =>
      [...entries.values()]
        .sort((a, b) => a.receivedAt.localeCompare(b.receivedAt))
        .map((entry) => structuredClone(entry)),
    flush: () => queue.idle(),
  };
}

function fileNameFor(jobId: string): string {
  return `${encodeFileKey(jobId)}${SUFFIX}`;
}

function withStepStarted(entry: JournalEntry, step: RunningStep): JournalEntry {
  const { index, total, name, startedAt } = step;
  return {
    ...entry,
    running: [...entry.running.filter((r) => r.index !== index), { index, total, name, startedAt }].sort((a, b) => a.index - b.index),
  };
}

function withStepEnded(entry: JournalEntry, index: number, result: StepResult): JournalEntry {
  return {
    ...entry,
    running: entry.running.filter((r) => r.index !== index),
    steps: [...entry.steps.filter((s) => s.index !== index), { index, result }].sort((a, b) => a.index - b.index),
  };
}

/** Validates a journal file's content. */
function validateJournalEntry(value: unknown): JournalEntry {
  const r = expectRecord(value, 'journal entry');
  expectVersion(r, JOURNAL_VERSION);
  const jobId = expectNonEmptyString(r, 'jobId');
  const offer = validateJobOffer(r.offer);
  if (offer.jobId !== jobId) failValidation('offer.jobId: does not match jobId');
  const steps = expectArray(r, 'steps').map((item, i) => {
    const s = expectRecord(item, `steps[${i}]`);
    return { index: expectInteger(s, 'index', 0), result: validateStepResult(s.result, `steps[${i}].result`) };
  });
  const running = expectArray(r, 'running').map((item, i) => {
    const s = expectRecord(item, `running[${i}]`);
    return {
      index: expectInteger(s, 'index', 0),
      total: expectInteger(s, 'total', 0),
      name: expectString(s, 'name'),
      startedAt: expectTimestamp(s, 'startedAt'),
    };
  });
  const final = r.final === null ? null : validateStatusReport(r.final, 'final');
  const finishedAt = expectNullableString(r, 'finishedAt');
  if ((final === null) !== (finishedAt === null)) failValidation('finishedAt: must be set exactly when final is');
  const reboots = r.reboots === undefined ? 0 : expectInteger(r, 'reboots', 0);
  const rebooting = r.rebooting === undefined || r.rebooting === null ? null : validateRebooting(r.rebooting);
  if (rebooting !== null && final !== null) failValidation('rebooting: must be null once final is set');
  const boot = r.boot === undefined || r.boot === null ? null : validateBoot(r.boot);
  return {
    version: JOURNAL_VERSION,
    jobId,
    jobName: expectString(r, 'jobName'),
    offer,
    receivedAt: expectTimestamp(r, 'receivedAt'),
    steps,
    running,
    final,
    finishedAt,
    reboots,
    rebooting,
    boot,
  };
}

function validateBoot(value: unknown): BootIdentity {
  const r = expectRecord(value, 'boot');
  return { bootId: expectNullableString(r, 'bootId'), marker: expectNonEmptyString(r, 'marker') };
}

function validateRebooting(value: unknown): RebootingRecord {
  const r = expectRecord(value, 'rebooting');
  const bootId = expectNullableString(r, 'bootId');
  const kind = r.kind === undefined ? 'reboot' : expectString(r, 'kind');
  if (kind !== 'reboot' && kind !== 'restart') failValidation(`rebooting.kind: expected "reboot" or "restart", got ${JSON.stringify(kind.slice(0, 40))}`);
  const agentVersion = r.agentVersion === undefined ? undefined : expectString(r, 'agentVersion');
  return {
    kind,
    ...(agentVersion === undefined ? {} : { agentVersion }),
    requestedAt: expectTimestamp(r, 'requestedAt'),
    bootId,
    marker: expectNonEmptyString(r, 'marker'),
    resumeAt: expectInteger(r, 'resumeAt', 0),
    stepLabel: expectString(r, 'stepLabel'),
  };
}
