// The path of a job, from the offer (or the journal at start) across the
// reboots and agent restarts it causes, as steps that each return what comes
// next; the agent's job loop acts on the answer (agent.ts superviseJob), so no
// step calls the next.
//
//   an offer                                         -> admit          -> 'run' | 'done'
//   the journal at start                             -> recover        -> each REBOOTING entry ('await')
//   { kind: 'run' }     a validated job to run (on)  -> the agent runs it -> 'reboot' | 'done'
//   { kind: 'reboot' }  a step asked for a reboot    -> requestReboot  -> 'await' | 'done'
//   { kind: 'await' }   a job journaled REBOOTING    -> awaitResume    -> 'run' | 'done'
//
// INVARIANTS
// - A job that asks for a reboot is journaled REBOOTING (durably, with the
//   boot it asked in) before its report is sent and before the reboot command
//   runs; it is resumed only after the journal says so and the boot changed
//   (reboot-decision.ts), and marked running again on disk before its next step.
// - 'done' means the job either ended (its final report recorded through
//   finals) or stays REBOOTING/RESTARTING for the next start (the agent stops).
import type { Clock } from '../clock/clock.js';
import type { JobOffer, StatusReport } from '../contract/types.js';
import { describeError } from '../errors/errors.js';
import type { NormalizedJob, StepResult } from '../jobs/types.js';
import type { Log } from '../log/log.js';
import type { BootIdentity } from '../state/boot-identity.js';
import type { Journal, JournalEntry, RebootingRecord } from '../state/journal.js';
import type { Outbox } from '../state/outbox.js';
import type { SelfUpdateOutcome } from '../state/self-update-outcome.js';
import type { History } from '../state/history.js';
import type { DegradedMode } from './degraded.js';
import type { Finals } from './held-finals.js';
import type { EnginePort, RebootPort, RebootRequest } from './ports.js';
import { decideAfterReboot, decideAfterRestart, decideRebootRequest, decideRebootUser } from './reboot-decision.js';
import type { StatusSink } from './status.js';
import { asLocalFault, formatDelay } from './words.js';

/** What ran before a reboot or an agent restart, for the run after it. */
export interface Resume {
  finished: readonly StepResult[];
  reboots: number;
  /** Set after an agent restart: the version of the agent that ran the steps before. */
  restartedFrom?: string;
  /** Added to the reports' status_details (a self-update's package versions). */
  details?: Record<string, unknown>;
}

/** What the agent does next with a job. */
export type JobStep =
  | { kind: 'run'; offer: JobOffer; job: NormalizedJob; receivedAt: number; resume?: Resume }
  | { kind: 'reboot'; offer: JobOffer; request: RebootRequest; report: StatusReport; gone: boolean }
  | { kind: 'await'; entry: JournalEntry }
  | { kind: 'done' };

/** What the path needs. */
export interface JobPathOptions {
  clock: Clock;
  log: Log;
  journal: Journal;
  outbox: Outbox;
  engine: EnginePort;
  reboot: RebootPort;
  history: History;
  finals: Pick<Finals, 'finish' | 'settle'>;
  degraded: Pick<DegradedMode, 'enter'>;
  status: Pick<StatusSink, 'setState' | 'update'>;
  version: string;
  /** The self-update handler's outcome for a job (state/self-update-outcome.ts); absent: none is looked for. */
  selfUpdate?: {
    read(jobId: string): Promise<SelfUpdateOutcome | null>;
    remove(jobId: string): Promise<void>;
  };
  /** Aborts when the agent stops polling: a waiting job stays journaled for the next start. */
  stopSignal: AbortSignal;
  /** Gives the REBOOTING report up to `ms` to reach the cloud (delivery.ts). */
  waitForDelivery(ms: number, signal: AbortSignal): Promise<void>;
}

// Before rebooting for a job, the IN_PROGRESS report saying so gets this long to reach the cloud.
const REBOOT_REPORT_WAIT_MS = 10_000;
// How often the agent looks for the self-update verdict.
const SELF_UPDATE_POLL_MS = 500;

/** The steps of a job's path. */
export interface JobPath {
  /** An offer: journal and validate it ('run'), or end it here ('done': a re-offer of a finished job, a job that cannot be journaled, a REJECTED one). */
  admit(offer: JobOffer): Promise<JobStep>;
  /** The journal at start: finished and interrupted jobs are settled (FAILED, never run again); REBOOTING and RESTARTING ones go to `waiting` as they are met. */
  recover(waiting: (entry: JournalEntry) => void): Promise<void>;
  /** A step asked for a reboot: journal REBOOTING, say so to the cloud, reboot. */
  requestReboot(step: Extract<JobStep, { kind: 'reboot' }>): Promise<JobStep>;
  /** Decides a REBOOTING or RESTARTING job: resume it in a new boot (or agent), wait, or end it. */
  awaitResume(entry: JournalEntry): Promise<JobStep>;
  /** Ends a journaled job without running it on: the report is made from the journal. */
  finishJournaled(entry: JournalEntry, status: 'FAILED' | 'TIMED_OUT', reason: string, details?: Record<string, unknown>): Promise<JobStep>;
}

/** Creates the path. */
export function createJobPath(options: JobPathOptions): JobPath {
  const { clock, log, journal, engine, reboot, status } = options;
  const signal = options.stopSignal;
  const done: JobStep = { kind: 'done' };

  const journalEntry = (jobId: string): JournalEntry => {
    const entry = journal.get(jobId);
    if (!entry) throw new Error(`internal: job ${jobId} is not in the journal`);
    return entry;
  };

  const finishJournaled = async (entry: JournalEntry, jobStatus: 'FAILED' | 'TIMED_OUT', reason: string, details: Record<string, unknown> = {}): Promise<JobStep> => {
    const { offer } = entry;
    const made = engine.journaledReport(entry, jobStatus, reason);
    const report = { ...made, status_details: { ...made.status_details, ...details } };
    log.warn(`job ${offer.jobName} ended ${jobStatus}: ${reason}`, { jobId: offer.jobId, jobName: offer.jobName, jobStatus });
    status.update({ currentJob: null });
    await options.finals.finish({ offer, receivedAt: Date.parse(entry.receivedAt), report, journaled: true, delivered: false });
    return done;
  };

  // The boot for the journal (journal.ts: which boot a step log belongs to),
  // read once (a process never outlives its boot; recovery reads it at start,
  // so a job's hand-out waits for no file); one that cannot be read is named
  // and counts as unknown, never as this boot.
  let journalBoot: BootIdentity | null = null;
  const bootForJournal = async (what: string): Promise<BootIdentity | null> => {
    if (journalBoot !== null) return journalBoot;
    try {
      journalBoot = await reboot.currentBoot();
      return journalBoot;
    } catch (error) {
      log.warn(`could not read the boot identity ${what} (${describeError(error)}); an interrupted job's report will say how far it got only as a lower bound`);
      return null;
    }
  };

  const showRebooting = (offer: JobOffer, reboots: number): void => {
    const currentJob = { jobId: offer.jobId, jobName: offer.jobName, step: null, stepIndex: 0, stepCount: 0, startedAt: clock.now(), reboots };
    status.setState('rebooting', { currentJob });
  };

  const forgetSelfUpdate = async (jobId: string): Promise<void> => {
    try {
      await options.selfUpdate?.remove(jobId);
    } catch (error) {
      log.warn(`could not remove the self-update outcome of job ${jobId}: ${describeError(error)}`, { jobId });
    }
  };

  // A job the agent restarted for may have run the self-update handler: its
  // watcher decides (new agent up, or rolled back) while this agent waits here.
  // null: no self-update; 'stopping': the agent stops meanwhile (the job stays RESTARTING).
  const awaitSelfUpdate = async (entry: JournalEntry, remainingMs: number): Promise<SelfUpdateOutcome | null | 'stopping'> => {
    const { selfUpdate } = options;
    if (!selfUpdate) return null;
    const { offer } = entry;
    const deadline = clock.monotonic() + remainingMs;
    let said = false;
    for (;;) {
      let outcome: SelfUpdateOutcome | null;
      try {
        outcome = await selfUpdate.read(offer.jobId);
      } catch (error) {
        return { status: 'failed', from: '', to: '', reason: `the self-update outcome cannot be read: ${describeError(error)}` };
      }
      if (outcome === null || outcome.status !== 'pending' || clock.monotonic() >= deadline) return outcome;
      if (!said) {
        said = true;
        log.info(`job ${offer.jobName}: waiting for the self-update check (${outcome.from} -> ${outcome.to}) before going on`, { jobId: offer.jobId, jobName: offer.jobName });
        const currentJob = { jobId: offer.jobId, jobName: offer.jobName, step: 'self-update check', stepIndex: entry.steps.length, stepCount: 0, startedAt: clock.now() };
        status.setState('running', { currentJob });
      }
      try {
        await clock.sleep(SELF_UPDATE_POLL_MS, signal);
      } catch {
        return 'stopping';
      }
    }
  };

  // The device rebooted (or the agent restarted): mark the job running again on disk, then run the steps after the one that asked.
  const resume = async (entry: JournalEntry, pending: RebootingRecord, details: Record<string, unknown> = {}): Promise<JobStep> => {
    const { offer } = entry;
    const finished = entry.steps.map((s) => s.result);
    const after = pending.kind === 'restart' ? 'the agent restart' : 'the reboot';
    if (entry.steps.some((s, i) => s.index !== i) || finished.length !== pending.resumeAt) {
      return finishJournaled(entry, 'FAILED', `could not resume after ${after}: the journal does not hold every step before it`);
    }
    let job: NormalizedJob;
    try {
      job = await engine.validate(offer, { resumed: true });
    } catch (error) {
      const problems = (error as { problems?: readonly string[] }).problems ?? [describeError(error)];
      return finishJournaled(entry, 'FAILED', `could not resume after ${after}: the job document no longer validates: ${problems.join('; ')}`);
    }
    await journal.recordResumed(offer.jobId, await bootForJournal(`to resume job ${offer.jobName}`));
    await forgetSelfUpdate(offer.jobId);
    const restartedFrom = pending.kind === 'restart' ? (pending.agentVersion ?? 'unknown') : undefined;
    const what = restartedFrom === undefined ? `reboot ${entry.reboots}` : `the agent restart (agent ${restartedFrom} -> ${options.version})`;
    log.info(`resumed job ${offer.jobName} after ${what}: going on after ${pending.stepLabel}`, { jobId: offer.jobId, jobName: offer.jobName });
    return { kind: 'run', offer, job, receivedAt: Date.parse(entry.receivedAt), resume: { finished, reboots: entry.reboots, restartedFrom, details } };
  };

  // A job that restarted the agent: this process is the restart; go on unless its time ran out or its self-update failed.
  const awaitRestart = async (entry: JournalEntry, pending: RebootingRecord, timeoutMs: number): Promise<JobStep> => {
    // stopping already: the job stays RESTARTING for the next start
    if (signal.aborted) return done;
    const decision = decideAfterRestart({ now: clock.now(), receivedAt: Date.parse(entry.receivedAt), jobTimeoutMs: timeoutMs });
    if (decision.kind === 'timed-out') return finishJournaled(entry, 'TIMED_OUT', decision.reason);
    const update = await awaitSelfUpdate(entry, decision.remainingMs);
    if (update === 'stopping') return done;
    const details = update ? { package_version_from: update.from, package_version_to: update.to } : {};
    if (update && update.status !== 'succeeded') {
      const reason = update.status === 'pending' ? `self-update ${update.from} -> ${update.to} was not decided within the job's time limit` : update.reason;
      await finishJournaled(entry, 'FAILED', reason, details);
      await forgetSelfUpdate(entry.offer.jobId);
      return done;
    }
    return resume(entry, pending, details);
  };

  return {
    finishJournaled,
    async admit(offer) {
      const { history, finals } = options;
      const fields = { jobId: offer.jobId, jobName: offer.jobName };
      const receivedAt = clock.now();
      const earlier = history.has(offer.jobId) ? await history.get(offer.jobId) : undefined;
      if (earlier) {
        log.warn(
          `the cloud handed out job ${offer.jobName} again, which this agent already finished (${earlier.report.status}); not running it again, sending its final report again`,
          { ...fields, jobStatus: earlier.report.status },
        );
        await options.outbox.enqueue(offer.jobId, earlier.report);
        return done;
      }
      log.info(`received job ${offer.jobName}`, fields);
      // Journal first: the cloud already marked the job IN_PROGRESS, and validation
      // (user lookups) takes long enough that a crash inside it would strand the job.
      try {
        await journal.begin(offer, receivedAt, await bootForJournal(`for job ${offer.jobName}`));
      } catch (error) {
        const fault = asLocalFault(error);
        options.degraded.enter(fault, `journaling job ${offer.jobName}`);
        const report = engine.unstartedReport(`not started: the agent could not journal the job (${fault.message}); nothing ran`);
        log.error(`job ${offer.jobName} ended ${report.status}: ${report.reason}`, { ...fields, jobStatus: report.status });
        await finals.finish({ offer, receivedAt, report, journaled: false, delivered: false });
        return done;
      }
      try {
        return { kind: 'run', offer, job: await engine.validate(offer), receivedAt };
      } catch (error) {
        const problems = (error as { problems?: readonly string[] }).problems ?? [describeError(error)];
        const report = engine.rejectedReport(problems);
        log.warn(`job ${offer.jobName} rejected: ${report.reason}`, { ...fields, jobStatus: 'REJECTED' });
        await finals.finish({ offer, receivedAt, report, journaled: true, delivered: false });
        return done;
      }
    },
    async recover(waiting) {
      const boot = await bootForJournal('at start');
      for (const entry of journal.list()) {
        const { offer } = entry;
        let report = entry.final;
        if (!report && entry.rebooting) {
          waiting(entry);
          continue;
        }
        // finished: its final report reached the outbox (held-finals.ts) before the agent stopped
        report ??= (await options.outbox.pendingFinal(offer.jobId)) ?? (await options.history.get(offer.jobId))?.report ?? null;
        if (!report) {
          report = engine.interruptedReport(entry, boot);
          log.warn(`job ${offer.jobName} was interrupted by an agent stop; reporting it FAILED, it is not run again`, { jobId: offer.jobId, jobName: offer.jobName, jobStatus: report.status });
          await journal.recordFinal(offer.jobId, report);
          await engine.removeLeftovers?.(offer.jobId);
        }
        await options.finals.settle(offer, Date.parse(entry.receivedAt), report);
      }
    },
    async requestReboot({ offer, request, report, gone }) {
      const fields = { jobId: offer.jobId, jobName: offer.jobName };
      const entry = journalEntry(offer.jobId);
      if (gone) return finishJournaled(entry, 'FAILED', `${request.label} asked for a reboot, but the cloud no longer knows this job; not rebooting`);
      const asker = entry.steps.find((s) => s.index === request.stepsDone - 1)?.result.user ?? '(unknown)';
      const refused = decideRebootUser(asker, reboot.rebootUsers, request.label);
      if (refused !== null) return finishJournaled(entry, 'FAILED', refused.reason);
      const decision = decideRebootRequest(entry.reboots, reboot.maxReboots, request.label);
      if (decision.kind === 'fail') return finishJournaled(entry, 'FAILED', decision.reason);
      let boot: BootIdentity;
      try {
        boot = await reboot.currentBoot();
      } catch (error) {
        return finishJournaled(entry, 'FAILED', `reboot did not happen: the agent could not read the boot identity (${describeError(error)})`);
      }
      await journal.recordReboot(offer.jobId, {
        requestedAt: new Date(clock.now()).toISOString(),
        bootId: boot.bootId,
        marker: boot.marker,
        resumeAt: request.stepsDone,
        stepLabel: request.label,
      });
      log.info(`rebooting for job ${offer.jobName}: ${request.label} asked for reboot ${decision.count} of at most ${reboot.maxReboots}`, { ...fields, jobStatus: 'REBOOTING' });
      showRebooting(offer, decision.count);
      await options.outbox.enqueue(offer.jobId, report);
      await options.waitForDelivery(REBOOT_REPORT_WAIT_MS, signal);
      if (signal.aborted) {
        log.warn(`not rebooting for job ${offer.jobName}: the agent is stopping; the job stays REBOOTING and is decided at the next start`, fields);
        return done;
      }
      try {
        await reboot.requestReboot();
      } catch (error) {
        return finishJournaled(journalEntry(offer.jobId), 'FAILED', `reboot did not happen: ${describeError(error)}`);
      }
      log.info(`asked the system to reboot (${reboot.commandText}); waiting up to ${formatDelay(reboot.rebootTimeoutMs)} for it`, fields);
      return { kind: 'await', entry: journalEntry(offer.jobId) };
    },
    async awaitResume(entry) {
      const pending = entry.rebooting;
      if (pending === null) return done;
      const timeoutMs = await engine.timeoutOf(entry.offer);
      if (pending.kind === 'restart') return awaitRestart(entry, pending, timeoutMs);
      showRebooting(entry.offer, entry.reboots);
      for (;;) {
        // stopping (the reboot stops the agent first): the job stays REBOOTING for the next start
        if (signal.aborted) return done;
        let boot: BootIdentity;
        try {
          boot = await reboot.currentBoot();
        } catch (error) {
          return finishJournaled(entry, 'FAILED', `could not tell whether the device rebooted: ${describeError(error)}`);
        }
        const decision = decideAfterReboot({
          pending: { requestedAt: Date.parse(pending.requestedAt), boot: { bootId: pending.bootId, marker: pending.marker } },
          currentBoot: boot,
          now: clock.now(),
          rebootTimeoutMs: reboot.rebootTimeoutMs,
          receivedAt: Date.parse(entry.receivedAt),
          jobTimeoutMs: timeoutMs,
        });
        if (decision.kind === 'resume') return resume(entry, pending);
        if (decision.kind === 'fail') return finishJournaled(entry, 'FAILED', decision.reason);
        if (decision.kind === 'timed-out') return finishJournaled(entry, 'TIMED_OUT', decision.reason);
        try {
          await clock.sleep(decision.waitMs, signal);
        } catch {
          // stopping (the reboot itself stops the agent): the job stays REBOOTING
          return done;
        }
      }
    },
  };
}

/** The first report after a reboot or an agent restart says the job goes on. */
export function markResumed(report: StatusReport, resume: Resume): StatusReport {
  if (resume.restartedFrom !== undefined) {
    return withVersions({ ...report, reason: `resumed after the agent restarted; ${report.reason}` }, resume.restartedFrom, null);
  }
  return {
    ...report,
    reason: `resumed after reboot; ${report.reason}`,
    status_details: { ...report.status_details, resumed_after_reboot: true, reboots: resume.reboots },
  };
}

/** A report of a job that restarted the agent names both versions (an update says from and to). */
export function withVersions(report: StatusReport, from: string, to: string | null): StatusReport {
  return {
    ...report,
    status_details: { ...report.status_details, resumed_after_restart: true, agent_version_from: from, ...(to === null ? {} : { agent_version_to: to }) },
  };
}
