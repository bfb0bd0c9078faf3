// The agent: its run/stop life cycle, the poll loop, and the supervision of
// the job it runs. It watches four long-lived loops (loop-watch.ts): the poll
// loop (here; it also runs the jobs), the delivery loop (delivery.ts), the
// progress loop of a running job (here), and the status writer (status.ts).
// The rest lives beside it: one poll of the cloud (poll-cloud.ts), a job's
// path from offer to final report across reboots and restarts (job-path.ts),
// final reports and what the disk cannot hold (held-finals.ts), degraded mode
// (degraded.ts), the hand-over to the next agent process (restart-handover.ts).
// Everything it touches comes in through AgentDeps (ports.ts).
import type { RefusedOffer } from '../cloud/parse-answer.js';
import type { PushStatus } from '../cloud/push-settings.js';
import type { JobOffer, StatusReport } from '../contract/types.js';
import { AbortedError, classifyLocalFault, LoopDiedError, type LocalFault } from '../errors/errors.js';
import { isPollLoopHealthy } from '../service/health.js';
import type { JournalEntry } from '../state/journal.js';
import type { Outbox } from '../state/outbox.js';
import { createDegradedMode, type DegradedMode } from './degraded.js';
import { createDelivery, reportLeftAtStop, type Delivery } from './delivery.js';
import { createFinals, type Finals } from './held-finals.js';
import { createIdleReclaimer, type IdleReclaimer } from './idle-reclaim.js';
import { createJobPath, markResumed, withVersions, type JobPath, type JobStep } from './job-path.js';
import { createLoopWatch, type LoopWatch } from './loop-watch.js';
import type { AgentDeps, JobRunPort } from './ports.js';
import { createStatusSink, reportingOutbox, type AgentStatus, type CurrentJobStatus, type StatusSink } from './status.js';
import { cutStepResult } from './stop-cause.js';
import { createRestartHandover, type HandoverJob, type RestartHandover } from './restart-handover.js';
import { createCloudPoller, type CloudPoller, type PollOutcome } from './poll-cloud.js';
import { createWakeGate, type WakeGate } from './wake-gate.js';
import { asLocalFault } from './words.js';

// How long after the last job or final report the memory a job left is collected.
const RECLAIM_AFTER_MS = 1000;
// The least wait before the next poll after an offer that ran nothing (a server handing out the same finished job forever).
const NOTHING_RAN_GAP_MS = 200;
// EXTEND_TIMEOUT_USEC is sent at most this often (each one is a datagram to systemd and a journal line at debug).
const EXTEND_MIN_GAP_MS = 1000;
// EXTEND_TIMEOUT_USEC margin when AgentDeps.stopAllowanceMs is not given.
const DEFAULT_STOP_ALLOWANCE_MS = 60_000;

/** The job being run. */
interface Current extends HandoverJob {
  /** What status shows of it. */
  shown: CurrentJobStatus;
  canceled: boolean;
  gone: boolean;
  /** While the stop cause is being decided: no next step starts before it is. */
  deciding: Promise<void> | null;
  /** The first local fault seen while the job ran; its final report says so. */
  fault: string | null;
}

/*
 * INVARIANTS
 * - At most one job runs (the poll loop awaits it before polling again).
 * - A job is in the journal before its first process starts; its final report
 *   goes through held-finals.ts (journal, outbox, history, in that order).
 * - Progress reports for a job are enqueued only while it runs and not after
 *   the cloud said it was canceled or deleted.
 * - A job's path across a reboot or restart is a sequence of JobSteps the poll
 *   loop runs one after the other (superviseJob); while a job is REBOOTING the
 *   agent polls for no other job.
 *
 * ERROR BOUNDARY
 * - Cloud failures (network, TLS, HTTP answers) are retried with backoff by
 *   the loop that met them; they never change the agent's mode.
 * - A local fault (classifyLocalFault: ENOSPC, EROFS, EIO, EACCES... on
 *   state_dir) puts the agent in degraded mode (degraded.ts).
 * - Anything else is a bug: the loop it happened in dies, run() stops the
 *   rest and rejects with LoopDiedError (exit EXIT_LOOP_DIED), and isHealthy()
 *   is false from that moment, so systemd restarts the agent either way.
 */

/** The running agent: call run(), then stop() to drain and end it. */
export class Agent {
  private readonly deps: AgentDeps;
  private readonly outbox: Outbox;
  private readonly pollStop = new AbortController();
  private readonly deliveryStop = new AbortController();
  private readonly status: StatusSink;
  private readonly loops: LoopWatch;
  private readonly degraded: DegradedMode;
  private readonly delivery: Delivery;
  private readonly finals: Finals;
  private readonly path: JobPath;
  /** Null when no stop cause is read: every stop drains. */
  private readonly handover: RestartHandover | null;
  private readonly reclaimer: IdleReclaimer | null;
  private readonly wakes: WakeGate;
  private readonly poller: CloudPoller;
  private current: Current | null = null;
  /** REBOOTING jobs found at start, decided before the first poll. */
  private readonly rebootingAtStart: JournalEntry[] = [];
  /** The journal could not be recovered at start (degraded): recovered once state_dir is writable. */
  private recoveryPending = false;
  private stopRequests = 0;
  /** Set by runJob: the offer just taken ran (so the next poll may follow at once). */
  private ranJob = false;
  private drainDeadline: number | null = null;
  /** Cancels the drain deadline's timer; set by the first stop(). */
  private cancelDrainTimer: (() => void) | null = null;
  private drainExpired = false;
  private lastExtendAt: number | null = null;
  private lastProgressAt: number;
  private backoffUntil: number | null = null;

  constructor(deps: AgentDeps) {
    this.deps = deps;
    const { clock, log } = deps;
    this.lastProgressAt = clock.monotonic();
    this.wakes = createWakeGate(clock);
    this.loops = createLoopWatch({ log, onDeath: () => this.onLoopDeath() });
    this.status = createStatusSink({
      clock,
      log,
      notifier: deps.notifier,
      write: deps.writeStatus,
      watch: (signal, writing) => this.loops.watch('status writer', signal, writing),
      initial: {
        agentVersion: deps.version,
        pid: deps.pid,
        disabledReason: deps.disabledReason,
        identitySource: deps.identitySource,
        limits: deps.limits ?? null,
        stateProbeIntervalMs: deps.recheckIntervalMs,
      },
    });
    this.outbox = reportingOutbox(deps.outbox, this.status);
    this.reclaimer = deps.reclaimMemory
      ? createIdleReclaimer({ clock, reclaim: deps.reclaimMemory, delayMs: RECLAIM_AFTER_MS, signal: this.deliveryStop.signal })
      : null;
    this.degraded = createDegradedMode({
      clock,
      log,
      status: this.status,
      checkState: deps.checkState,
      probeState: deps.probeState,
      recheckIntervalMs: deps.recheckIntervalMs,
      onEnter: (fault) => this.onDegraded(fault),
      onLeave: () => {
        if (this.status.state() === 'degraded') this.status.setState(deps.disabledReason ? 'disabled' : 'idle');
      },
      pollLoopProbes: () => this.status.snapshot().status.polling,
    });
    this.delivery = createDelivery({
      clock,
      log,
      cloud: deps.cloud,
      outbox: this.outbox,
      retry: deps.deliveryRetry,
      degraded: this.degraded,
      status: this.status,
      cancelRunning: (jobId) => this.cancelRunning(jobId),
      forgetRunning: (jobId) => {
        if (this.current?.offer.jobId === jobId) this.current.gone = true;
      },
      onFinalDelivered: () => this.reclaimer?.poke(),
    });
    const { journal, history, engine, reboot, observer, selfUpdate, version } = deps;
    const ackPending = () => this.delivery.ackPending();
    this.finals = createFinals({ clock, log, cloud: deps.cloud, journal, outbox: this.outbox, history, degraded: this.degraded, observer, ackPending, recheckIntervalMs: deps.recheckIntervalMs });
    this.path = createJobPath({
      clock,
      log,
      journal,
      outbox: this.outbox,
      engine,
      reboot,
      history,
      finals: this.finals,
      degraded: this.degraded,
      status: this.status,
      version,
      selfUpdate,
      stopSignal: this.pollStop.signal,
      waitForDelivery: (ms, signal) => this.delivery.waitUntilEmpty(ms, signal),
    });
    const { cloud, scheduler } = deps;
    this.poller = createCloudPoller({ clock, log, cloud, scheduler, status: this.status, observer, onPollStart: () => this.wakes.pollStarting() });
    this.handover = deps.stopCause ? createRestartHandover({ clock, log, journal, version, stopCause: deps.stopCause }) : null;
  }

  /** A push notification arrived (or the channel connected): poll now, or right after the running job. */
  wake(): void {
    this.wakes.wake();
  }

  /** A hold changed (job-gate.ts noticed a file change): refresh status and STATUS=. */
  holdChanged(): void {
    this.status.refresh({ hold: this.deps.jobGate?.status() ?? null });
  }

  /** The push channel changed state: refresh status and STATUS=. */
  pushChanged(): void {
    this.status.refresh({ push: this.pushStatus() });
  }

  /** The agent's current status, as `cloudjobs status` shows it. */
  getStatus(): AgentStatus {
    return this.status.current();
  }

  /** Whether the watchdog may be fed: the poll loop made progress lately or is deliberately waiting. */
  isHealthy(): boolean {
    if (this.loops.dead()) return false;
    if (this.current || ['disabled', 'stopping', 'rebooting'].includes(this.status.state())) return true;
    // a poll in flight may take up to the request time limit before it counts as progress
    return isPollLoopHealthy({
      now: this.deps.clock.monotonic(),
      lastProgressAt: this.lastProgressAt,
      intervalMs: Math.max(this.deps.longestPollWaitMs, this.deps.requestTimeoutMs),
      backoffUntil: this.backoffUntil,
    });
  }

  /** A one-line description of what the agent does, for systemd's STATUS=; a fault comes first. */
  describe(): string {
    return this.status.describe();
  }

  /**
   * Runs until stop(): recovers interrupted jobs, says READY, then polls and
   * delivers. Resolves when the agent has drained.
   */
  async run(): Promise<void> {
    const { log, notifier } = this.deps;
    this.status.update({ push: this.pushStatus(), hold: this.deps.jobGate?.status() ?? null });
    await this.recoverOrDegrade();
    const delivery = this.delivery.run(this.deliveryStop.signal);
    const deliveryWatch = this.loops.watch('delivery', this.deliveryStop.signal, delivery);
    notifier.ready();
    if (this.deps.disabledReason) {
      log.info(`cloud jobs are disabled: ${this.deps.disabledReason}; the agent stays idle and takes no jobs`);
      this.status.setState('disabled');
      for (const entry of this.rebootingAtStart.splice(0)) {
        await this.path.finishJournaled(entry, 'FAILED', `could not resume after the reboot: cloud jobs are disabled (${this.deps.disabledReason})`);
      }
      await waitForAbort(this.pollStop.signal);
    } else {
      this.status.update({ polling: true });
      const polling = this.pollLoop();
      await this.loops.watch('poll', this.pollStop.signal, polling);
      // a death elsewhere stopped the job and polling: let the loop hand its report to the outbox
      await polling.catch(() => undefined);
    }
    this.status.update({ polling: false });
    if (!this.loops.dead()) {
      this.status.setState('stopping');
      await this.delivery.waitUntilEmpty(this.deps.flushTimeoutMs);
      reportLeftAtStop(this.outbox, log);
      await this.finals.sendHeld(this.deliveryStop.signal, this.deps.flushTimeoutMs);
      this.finals.reportHeldAtStop();
    }
    this.cancelDrainTimer?.();
    this.deliveryStop.abort();
    await deliveryWatch;
    await delivery.catch(() => undefined);
    // no status write may land after run() returns (the caller removes the file)
    await this.status.close();
    const dead = this.loops.dead();
    if (dead) throw dead;
  }

  /** First call: stop polling and let a running job drain; second call: stop the job now. */
  stop(): void {
    this.stopRequests += 1;
    const { log, clock, notifier } = this.deps;
    const current = this.current;
    if (this.stopRequests === 1) {
      notifier.stopping();
      this.drainDeadline = clock.monotonic() + this.deps.drainTimeoutMs;
      if (current) {
        const seconds = Math.round(this.deps.drainTimeoutMs / 1000);
        log.info(`stopping: waiting up to ${seconds}s for job ${current.offer.jobName} to finish (send the signal again to stop it now)`, { jobId: current.offer.jobId, jobName: current.offer.jobName });
      } else {
        log.info('stopping: no job is running');
      }
      this.showCurrent();
      this.status.markStopping();
      this.extendStopTimeout();
      this.pollStop.abort();
      // exact: its own timer, not the next progress tick (which may be progress_interval away)
      this.cancelDrainTimer = clock.timer(this.deps.drainTimeoutMs, () => this.onDrainDeadline());
      if (current && this.handover) current.deciding = this.handover.decide(current, () => this.current === current && this.stopRequests === 1 && !this.drainExpired);
    } else if (current?.run) {
      log.warn('stopping now: the running job is stopped', { jobId: current.offer.jobId });
      current.run.stop('shutdown');
    }
  }

  // The drain deadline passed: a job still running is stopped through the kill ladder (reported as stopped by shutdown).
  private onDrainDeadline(): void {
    this.drainExpired = true;
    const current = this.current;
    if (!current?.run) return;
    this.deps.log.warn(`job ${current.offer.jobName} did not finish within the drain timeout; stopping it`, { jobId: current.offer.jobId });
    current.run.stop('shutdown');
  }

  // A state_dir that cannot be written at start must not become a restart storm:
  // degrade, and recover the journal once the disk takes writes again.
  private async recoverOrDegrade(): Promise<void> {
    try {
      await this.recover();
      this.recoveryPending = false;
    } catch (error) {
      this.recoveryPending = true;
      this.degraded.enter(asLocalFault(error), 'recovering the journal');
    }
  }

  // The journal at start: REBOOTING jobs wait for the poll loop (recovery may run again after a fault: each is decided once).
  private async recover(): Promise<void> {
    await this.path.recover((entry) => {
      if (!this.rebootingAtStart.some((e) => e.jobId === entry.jobId)) this.rebootingAtStart.push(entry);
    });
  }

  // ---- polling ---------------------------------------------------------

  private async pollLoop(): Promise<void> {
    const { clock, scheduler, log } = this.deps;
    const signal = this.pollStop.signal;
    // a job that asked for a reboot goes on (or ends) before any new job is taken
    for (const entry of this.rebootingAtStart.splice(0)) await this.superviseJob({ kind: 'await', entry });
    while (!signal.aborted) {
      if (await this.waitWhileHeld(signal)) continue;
      let delay: number;
      let state: 'idle' | 'backoff' | 'degraded';
      let offer: JobOffer | null = null;
      let refused: RefusedOffer | null = null;
      if (await this.isStateUnusable(signal)) {
        this.lastProgressAt = clock.monotonic();
        this.backoffUntil = null;
        await this.finals.sendHeld(signal, this.deps.requestTimeoutMs);
        delay = this.deps.recheckIntervalMs;
        state = 'degraded';
      } else {
        ({ delay, state, offer, refused } = await this.pollCloud(signal));
      }
      // outside the poll's try: nothing the job does is a cloud failure (ERROR BOUNDARY)
      if (offer !== null) {
        this.ranJob = false;
        await this.takeOffer(offer);
        this.reclaimer?.poke();
        // an offer that ran nothing (a re-offer of a finished job, a REJECTED one) must not become a tight poll loop
        delay = this.ranJob ? scheduler.afterJob() : Math.max(scheduler.afterJob(), NOTHING_RAN_GAP_MS);
        if (this.degraded.fault()) state = 'degraded';
      } else if (refused !== null) {
        await this.takeRefusal(refused);
        delay = Math.max(scheduler.afterJob(), NOTHING_RAN_GAP_MS);
        if (this.degraded.fault()) state = 'degraded';
      }
      if (signal.aborted) break;
      this.status.setState(state, { nextPollAt: clock.now() + delay });
      try {
        // a push wake-up cuts an idle wait short, never a failure backoff (Retry-After, the herd rule)
        if (state === 'idle') {
          if ((await this.wakes.sleep(delay, signal)) === 'wake') log.debug('a push wake-up ended the wait; polling now');
        } else if (delay > 0) {
          await clock.sleep(delay, signal);
        }
      } catch (error) {
        if (error instanceof AbortedError || signal.aborted) break;
        throw error;
      }
    }
    log.debug('poll loop stopped');
  }

  // The job gate (job-gate.ts): while it holds, no poll; the loop waits (at most a recheck interval) and asks again.
  private async waitWhileHeld(signal: AbortSignal): Promise<boolean> {
    const gate = this.deps.jobGate;
    if (!gate) return false;
    const held = (await gate.check()).held;
    if (!held) {
      this.status.update({ hold: gate.status() });
      return false;
    }
    this.lastProgressAt = this.deps.clock.monotonic();
    this.backoffUntil = null;
    this.status.setState('held', { nextPollAt: null, hold: gate.status() });
    await gate.wait(this.deps.recheckIntervalMs, signal).catch((error: unknown) => {
      if (!(error instanceof AbortedError)) throw error;
    });
    return true;
  }

  // Before a poll: whether state_dir can take a new job's journal entry. Once it
  // recovers, the journal is recovered (if it could not be at start) and held finals are stored.
  private async isStateUnusable(signal: AbortSignal): Promise<boolean> {
    const wasDegraded = this.degraded.fault() !== null;
    const unusable = await this.degraded.checkBeforePoll();
    if (wasDegraded && !unusable && !signal.aborted) {
      if (this.recoveryPending) await this.recoverOrDegrade();
      await this.finals.storeHeld();
    }
    return this.degraded.fault() !== null;
  }

  // One poll; the loop made progress (and is in a deliberate backoff after a failure) unless the stop aborted it.
  private async pollCloud(signal: AbortSignal): Promise<PollOutcome> {
    const outcome = await this.poller.poll(signal);
    if (outcome === null) return { delay: 0, state: 'idle', offer: null, refused: null };
    const now = this.deps.clock.monotonic();
    this.lastProgressAt = now;
    this.backoffUntil = outcome.state === 'backoff' ? now + outcome.delay : null;
    return outcome;
  }

  // ---- running a job ---------------------------------------------------

  // A local fault while taking a job degrades the agent; anything else is a bug and kills the poll loop.
  private async takeOffer(offer: JobOffer): Promise<void> {
    try {
      await this.superviseJob(await this.path.admit(offer));
    } catch (error) {
      this.degraded.enter(asLocalFault(error), `handling job ${offer.jobName}`);
    }
  }

  // An offer whose id cannot name its status URL: nothing runs and nothing is
  // queued (it could never be delivered and would hold up every report behind
  // it); the history keeps it as REJECTED for `cloudjobs history`.
  private async takeRefusal(refused: RefusedOffer): Promise<void> {
    const fields = { jobId: refused.jobId, jobName: refused.jobName, jobStatus: 'REJECTED' };
    this.deps.log.error(`refused job ${refused.jobName}: ${refused.reason}; nothing runs and nothing can be reported for it`, fields);
    try {
      await this.finals.recordRefused(refused, this.deps.engine.rejectedReport([refused.reason]));
    } catch (error) {
      this.degraded.enter(asLocalFault(error), `recording refused job ${refused.jobName}`);
    }
  }

  // A job's whole path: run, reboot, wait for the boot, run on... each step says what comes next (job-path.ts).
  private async superviseJob(first: JobStep): Promise<void> {
    let step = first;
    while (step.kind !== 'done') {
      if (step.kind === 'run') step = await this.runJob(step);
      else if (step.kind === 'reboot') step = await this.path.requestReboot(step);
      else step = await this.path.awaitResume(step.entry);
    }
  }

  // Runs a validated job to its end (or to a reboot it asked for); `resume` holds what ran before a reboot.
  private async runJob({ offer, job, receivedAt, resume }: Extract<JobStep, { kind: 'run' }>): Promise<JobStep> {
    const { log, engine, journal } = this.deps;
    const fields = { jobId: offer.jobId, jobName: offer.jobName };
    this.ranJob = true;
    const shown: CurrentJobStatus = { jobId: offer.jobId, jobName: offer.jobName, step: null, stepIndex: 0, stepCount: job.steps.length, startedAt: receivedAt, ...(resume ? { reboots: resume.reboots } : {}) };
    const current: Current = { offer, job, run: null, shown, canceled: false, gone: false, handover: null, deciding: null, starting: 0, handedOver: () => undefined, fault: null };
    this.setCurrent(current, 'running');
    const run = engine.start(job, {
      onStepStart: async (index, total, name) => {
        current.starting += 1;
        try {
          await this.startStepHook(current, index, total, name);
        } finally {
          current.starting -= 1;
          await this.handover?.tryNow(current);
        }
      },
      // the engine logs each step's start and end with its fields
      onStepEnd: async (result, index) => {
        if (current.handover?.journaled) return;
        const cause = current.handover?.cause;
        const recorded = cause?.kind === 'restart-command' && cause.stepIndex === index - 1 ? cutStepResult(result, cause) : result;
        await this.journalStep(current, () => journal.recordStep(offer.jobId, index - 1, recorded));
        await this.handover?.tryNow(current);
      },
      // the agent's unit is stopping (its drain): systemd starts no new scope for the job meanwhile
      agentStopping: () => this.stopRequests > 0,
    }, resume ? { finished: resume.finished, startedAtMs: receivedAt } : undefined);
    current.run = run;
    if (this.stopRequests > 1 || this.drainExpired || this.loops.dead()) run.stop('shutdown');
    const fault = this.degraded.fault();
    if (fault) run.halt(haltReason(fault));
    await this.enqueueProgress(current, run, resume === undefined ? undefined : (report) => markResumed(report, resume));

    const supervised = await this.superviseRun(current, run);
    if (supervised === null) {
      this.setCurrent(null);
      log.info(`job ${offer.jobName} goes on in the next agent process (RESTARTING)`, { ...fields, jobStatus: 'RESTARTING' });
      return { kind: 'done' };
    }
    const versioned = resume?.restartedFrom ? withVersions(supervised, resume.restartedFrom, this.deps.version) : supervised;
    const detailed = resume?.details ? { ...versioned, status_details: { ...versioned.status_details, ...resume.details } } : versioned;
    const report = withFault(detailed, current.fault);
    // the run holds every step's output buffers: nothing may keep it once it ended
    current.run = null;
    if (run.rebootRequest !== null && report.status === 'IN_PROGRESS') {
      this.current = null;
      this.showCurrent();
      return { kind: 'reboot', offer, request: run.rebootRequest, report, gone: current.gone };
    }
    log.info(`job ${offer.jobName} ended ${report.status}: ${report.reason}`, { ...fields, jobStatus: report.status });
    this.setCurrent(null);
    if (current.gone) log.warn(`job ${offer.jobName} was deleted on the server; its result is kept in history only`, fields);
    await this.finals.finish({ offer, receivedAt, report, journaled: true, delivered: current.gone });
    return { kind: 'done' };
  }

  // The running job changed: status shows it (with `state`), or shows none.
  private setCurrent(current: Current | null, state?: 'running'): void {
    this.current = current;
    this.showCurrent();
    if (state) this.status.setState(state, { currentJob: current?.shown ?? null });
    else this.status.update({ currentJob: current?.shown ?? null });
  }

  // What a stopping agent waits for: the running job and the drain deadline.
  private showCurrent(): void {
    const current = this.current;
    this.status.update({ draining: current ? { jobName: current.offer.jobName, deadline: this.drainDeadline } : null });
  }

  // Before a step starts: no step starts once the job is to be handed over (halt: the run ends when running ones do).
  private async startStepHook(current: Current, index: number, total: number, name: string): Promise<void> {
    if (current.deciding) await current.deciding;
    if (current.handover) {
      current.run?.halt('the agent restarts; the job goes on in the next agent process');
      return;
    }
    current.shown = { ...current.shown, step: name, stepIndex: index, stepCount: total };
    if (this.current === current) this.status.setState('running', { currentJob: current.shown });
    // a full card still takes a few appends (a file's last page has room), so ask before each step, not only at the first failed write
    await this.degraded.checkBeforeStep(name);
    // decided meanwhile: checked with no await before the record, so a step is either journaled as started or never starts
    if (current.handover) {
      current.run?.halt('the agent restarts; the job goes on in the next agent process');
      return;
    }
    await this.journalStep(current, () => this.deps.journal.recordStepStart(current.offer.jobId, index - 1, total, name));
  }

  // A journal write for a running job: a local fault halts the job (degraded), a bug kills the poll loop.
  private async journalStep(current: Current, write: () => Promise<void>): Promise<void> {
    try {
      await write();
    } catch (error) {
      const fault = classifyLocalFault(error);
      if (fault === null) {
        this.loops.die(new LoopDiedError('poll', error));
        current.run?.stop('shutdown');
        return;
      }
      this.degraded.enter(fault, `journaling job ${current.offer.jobName}`);
    }
  }

  // Queues a progress report; the state directory failing costs the report, not the job.
  private async enqueueProgress(current: Current, run: JobRunPort, mark?: (report: StatusReport) => StatusReport): Promise<void> {
    if (current.canceled || current.gone || current.handover || this.degraded.fault()) return;
    try {
      const snapshot = run.snapshot();
      current.shown = { ...current.shown, limits: snapshot.status_details.limits };
      if (this.current === current) this.status.update({ currentJob: current.shown });
      await this.outbox.enqueue(current.offer.jobId, mark ? mark(snapshot) : snapshot);
    } catch (error) {
      this.degraded.enter(asLocalFault(error), `queueing a progress report of job ${current.offer.jobName}`);
    }
  }

  // Waits for a run to end while sending progress (the progress loop); null when the job was handed to the next agent process instead.
  private async superviseRun(current: Current, run: JobRunPort): Promise<StatusReport | null> {
    const { clock } = this.deps;
    const ticker = new AbortController();
    // every pass waits a whole progress_interval (at least 100ms by the schema); the drain deadline has its own timer
    const tick = async (): Promise<void> => {
      for (;;) {
        await clock.sleep(this.deps.progressIntervalMs, ticker.signal);
        await this.enqueueProgress(current, run);
        if (this.stopRequests > 0) {
          this.extendStopTimeout();
          this.status.setState('stopping');
        }
      }
    };
    const ticking = this.loops.watch('progress', ticker.signal, tick());
    const handedOver = new Promise<'handed-over'>((resolve) => {
      current.handedOver = () => resolve('handed-over');
      // journaled before this run was supervised (a restart decided while its first progress report was queued)
      if (current.handover?.journaled) resolve('handed-over');
    });
    try {
      const ended = await Promise.race([run.done, handedOver]);
      if (ended !== 'handed-over' && !current.handover?.journaled) return ended;
      // the run ends by itself now (no step runs or starts): wait for its sweep and work-dir removal
      await run.done;
      return null;
    } finally {
      current.handedOver = () => undefined;
      ticker.abort();
      await ticking;
    }
  }

  // The cloud canceled a job: stop it if it is the running one (once); true when it was stopped now.
  private cancelRunning(jobId: string): boolean {
    const current = this.current;
    if (current?.offer.jobId !== jobId || current.canceled) return false;
    current.canceled = true;
    current.run?.stop('cancel');
    return true;
  }

  // ---- faults and stopping -----------------------------------------------

  // Degraded mode met a fault: the running job starts no further step and its final report says why.
  private onDegraded(fault: LocalFault): void {
    const current = this.current;
    if (current?.run) {
      current.fault ??= fault.message;
      current.run.halt(haltReason(fault));
    }
    this.status.setState(current ? 'running' : 'degraded');
  }

  // A loop died (logged by loop-watch.ts): stop everything so run() can reject; the health check fails from now on.
  private onLoopDeath(): void {
    const dead = this.loops.dead();
    this.status.update({ failed: dead?.message ?? 'a loop died' });
    this.status.announce();
    this.current?.run?.stop('shutdown');
    this.pollStop.abort();
    this.deliveryStop.abort();
  }

  // While stopping: systemd waits for the drain deadline plus the allowance, whatever TimeoutStopSec says.
  private extendStopTimeout(): void {
    const now = this.deps.clock.monotonic();
    if (this.lastExtendAt !== null && now >= this.lastExtendAt && now - this.lastExtendAt < EXTEND_MIN_GAP_MS) return;
    this.lastExtendAt = now;
    const left = this.drainDeadline === null ? 0 : Math.max(0, this.drainDeadline - now);
    this.deps.notifier.extendTimeout?.(left + (this.deps.stopAllowanceMs ?? DEFAULT_STOP_ALLOWANCE_MS));
  }

  private pushStatus(): PushStatus | null {
    const push = this.deps.pushStatus?.();
    return push ? { ...push } : null;
  }
}

function haltReason(fault: LocalFault): string {
  return `the agent cannot write its state (${fault.message}), so it started no further step`;
}

// The final report of a job during which the state directory failed says so.
function withFault(report: StatusReport, fault: string | null): StatusReport {
  if (fault === null) return report;
  const reason = report.reason.includes(fault) ? report.reason : `${report.reason}; meanwhile the agent could not write its state (${fault})`;
  return { ...report, reason, status_details: { ...report.status_details, local_fault: fault } };
}

function waitForAbort(signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.resolve();
  return new Promise((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }));
}
