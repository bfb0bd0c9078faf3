// The agent: one poll loop that takes jobs one at a time and runs them, and one
// delivery loop that drains the durable outbox to the cloud. Everything it
// touches comes in through AgentDeps so tests can drive it.
import type { Clock } from '../clock/clock.js';
import type { PollScheduler, RetryBackoff } from '../cloud/backoff.js';
import type { CloudClient, StatusOutcome } from '../cloud/client.js';
import type { ApiGeneration, JobOffer, StatusReport } from '../contract/types.js';
import { AbortedError, describeError } from '../errors/errors.js';
import type { Log } from '../log/log.js';
import type { NormalizedJob, StepResult } from '../jobs/types.js';
import { isPollLoopHealthy } from '../service/health.js';
import type { History, HistoryEntry } from '../state/history.js';
import type { Journal, JournalEntry } from '../state/journal.js';
import type { Outbox, OutboxEntry } from '../state/outbox.js';
import { createIdleReclaimer, type IdleReclaimer } from './idle-reclaim.js';
import { createReportCutter, type ReportCutter, type TooLargeVerdict } from './report-cut.js';

/** A failure the cloud client raised, as far as the agent needs to know it. */
interface CloudFailure {
  kind: string;
  status?: number;
  serverMessage?: string;
  message: string;
}

/** A running job. */
export interface JobRunPort {
  done: Promise<StatusReport>;
  snapshot(): StatusReport;
  stop(kind: 'cancel' | 'shutdown'): void;
}

/** The job engine as the agent uses it. */
export interface EnginePort {
  /** Validates an offer; rejects with the list of problems (JobValidationError). */
  validate(offer: JobOffer): Promise<NormalizedJob>;
  start(job: NormalizedJob, hooks: {
    onStepStart(index: number, total: number, name: string): void | Promise<void>;
    onStepEnd(result: StepResult, index: number, total: number): void | Promise<void>;
  }): JobRunPort;
  rejectedReport(problems: readonly string[]): StatusReport;
  interruptedReport(entry: JournalEntry): StatusReport;
}

/** systemd's view of the agent (no-ops outside systemd). */
export interface NotifierPort {
  ready(): void;
  status(text: string): void;
  stopping(): void;
}

/** What `cloudjobs status` shows, kept current under runtime_dir. */
export interface AgentStatus {
  agentVersion: string;
  pid: number;
  state: 'starting' | 'idle' | 'running' | 'backoff' | 'disabled' | 'stopping';
  polling: boolean;
  disabledReason: string | null;
  identitySource: string;
  generation: ApiGeneration | null;
  currentJob: { jobId: string; jobName: string; step: string | null; stepIndex: number; stepCount: number; startedAt: number } | null;
  lastPoll: { at: number; outcome: string } | null;
  nextPollAt: number | null;
  outbox: { count: number; bytes: number; oldestAgeSeconds: number | null };
  /** Delivery counters since start: refused = dropped on the API's own refusal (or too large even when cut). */
  reports: DeliveryCounts;
  updatedAt: number;
  /** The same sentence systemd gets as STATUS=. */
  describe?: string;
}

/** What the delivery loop did since the agent started. */
export interface DeliveryCounts {
  delivered: number;
  /** Dropped: the API's own refusal (400 "status is required", 404 "Job status not found"), or still too large at the smallest size. */
  refused: number;
  /** Sends that failed and were tried again later (network, 5xx, HTML or unknown 4xx answers). */
  retried: number;
  /** Sends answered 413 and sent again smaller. */
  cut: number;
}

/** Everything the agent needs. */
export interface AgentDeps {
  clock: Clock;
  log: Log;
  cloud: CloudClient;
  scheduler: PollScheduler;
  deliveryRetry: RetryBackoff;
  journal: Journal;
  outbox: Outbox;
  history: History;
  engine: EnginePort;
  notifier: NotifierPort;
  writeStatus(status: AgentStatus): Promise<void>;
  version: string;
  identitySource: string;
  pid: number;
  /** Null when jobs run; else why the agent idles (e.g. "jobs.enabled is false"). */
  disabledReason: string | null;
  pollIntervalMs: number;
  /** cloud.request_timeout: how long one poll may be in flight. */
  requestTimeoutMs: number;
  progressIntervalMs: number;
  drainTimeoutMs: number;
  /** How long shutdown may spend flushing the outbox. */
  flushTimeoutMs: number;
  /** A full garbage collection, run once the agent is quiet after a job (service/memory.ts); none when absent. */
  reclaimMemory?: () => void;
}

// How long after the last job or final report the memory a job left is collected.
const RECLAIM_AFTER_MS = 1000;

// An unchanged status is rewritten at most this often (so `cloudjobs status` shows a recent "last poll").
const STATUS_REFRESH_MS = 15_000;

/** What the delivery loop keeps between reports. */
interface DeliveryState {
  cutter: ReportCutter;
  /** The last failure logged, so a repeated one is not logged again. */
  lastProblem: string | null;
}

interface Current {
  offer: JobOffer;
  run: JobRunPort | null;
  canceled: boolean;
  gone: boolean;
}

/*
 * INVARIANTS
 * - At most one job runs (the poll loop awaits it before polling again).
 * - A job is in the journal before its first process starts, and its final
 *   report is in the journal before it enters the outbox; it leaves the
 *   journal only after the outbox and history hold the final report. So a crash
 *   at any point leaves either a journal entry (recovered at start) or an
 *   outbox entry (delivered at start), never neither.
 * - The outbox is drained by one loop, one entry at a time, oldest first: the
 *   reports of a job arrive in the order they were made.
 * - Progress reports for a job are enqueued only while it runs and not after
 *   the cloud said it was canceled or deleted.
 */

/** The running agent: call run(), then stop() to drain and end it. */
export class Agent {
  private readonly deps: AgentDeps;
  private readonly pollStop = new AbortController();
  private readonly deliveryStop = new AbortController();
  private readonly reclaimer: IdleReclaimer | null;
  private current: Current | null = null;
  private stopRequests = 0;
  private drainDeadline: number | null = null;
  private lastCloudProblem: string | null = null;
  private lastProgressAt: number;
  private backoffUntil: number | null = null;
  private status: AgentStatus;
  private statusWriter: Promise<void> | null = null;
  private statusClosed = false;
  private statusDirty = false;
  private statusKey = '';
  private statusWrittenAt = 0;

  constructor(deps: AgentDeps) {
    this.deps = deps;
    this.lastProgressAt = deps.clock.now();
    this.reclaimer = deps.reclaimMemory
      ? createIdleReclaimer({ clock: deps.clock, reclaim: deps.reclaimMemory, delayMs: RECLAIM_AFTER_MS, signal: this.deliveryStop.signal })
      : null;
    this.status = {
      agentVersion: deps.version,
      pid: deps.pid,
      state: 'starting',
      polling: false,
      disabledReason: deps.disabledReason,
      identitySource: deps.identitySource,
      generation: null,
      currentJob: null,
      lastPoll: null,
      nextPollAt: null,
      outbox: { count: 0, bytes: 0, oldestAgeSeconds: null },
      reports: { delivered: 0, refused: 0, retried: 0, cut: 0 },
      updatedAt: deps.clock.now(),
    };
  }

  /** The agent's current status (the seed adapter's getStatus()). */
  getStatus(): AgentStatus {
    return { ...this.status, outbox: this.outboxStats(), reports: { ...this.status.reports }, describe: this.describe() };
  }

  /** The last `limit` finished jobs, newest first (the seed adapter's getJobHistory()). */
  getJobHistory(limit: number): Promise<HistoryEntry[]> {
    return this.deps.history.list(limit);
  }

  /** Whether the watchdog may be fed: the poll loop made progress lately or is deliberately waiting. */
  isHealthy(): boolean {
    if (this.current || this.status.state === 'disabled' || this.status.state === 'stopping') return true;
    // a poll in flight may take up to the request time limit before it counts as progress
    return isPollLoopHealthy({
      now: this.deps.clock.now(),
      lastProgressAt: this.lastProgressAt,
      intervalMs: Math.max(this.deps.pollIntervalMs, this.deps.requestTimeoutMs),
      backoffUntil: this.backoffUntil,
    });
  }

  /** A one-line description of what the agent does, for systemd's STATUS=. */
  describe(): string {
    const s = this.status;
    const now = this.deps.clock.now();
    const queued = this.outboxStats().count;
    const refused = s.reports.refused;
    const tail = `${queued > 0 ? `; ${queued} report${queued === 1 ? '' : 's'} waiting for the cloud` : ''}${
      refused > 0 ? `; ${refused} report${refused === 1 ? '' : 's'} refused by the cloud` : ''
    }`;
    switch (s.state) {
      case 'starting':
        return 'starting';
      case 'disabled':
        return `idle: jobs disabled (${s.disabledReason ?? 'disabled'})${tail}`;
      case 'running': {
        const job = s.currentJob;
        if (!job) return `running a job${tail}`;
        const step = job.step ? ` (step ${job.stepIndex}/${job.stepCount}: ${job.step})` : '';
        return `running job ${job.jobName}${step}${tail}`;
      }
      case 'backoff': {
        const wait = s.nextPollAt ? Math.max(0, Math.round((s.nextPollAt - now) / 1000)) : 0;
        return `cloud unreachable (${s.lastPoll?.outcome ?? 'error'}), retry in ${wait}s${tail}`;
      }
      case 'stopping': {
        if (this.current) {
          const left = this.drainDeadline ? Math.max(0, Math.round((this.drainDeadline - now) / 1000)) : 0;
          return `stopping: waiting for job ${this.current.offer.jobName} (${left}s left)`;
        }
        return `stopping: sending ${queued} queued report${queued === 1 ? '' : 's'}`;
      }
      case 'idle': {
        const ago = s.lastPoll ? Math.max(0, Math.round((now - s.lastPoll.at) / 1000)) : 0;
        return `idle, last poll ${ago}s ago${tail}`;
      }
    }
  }

  /**
   * Runs until stop(): recovers interrupted jobs, says READY, then polls and
   * delivers. Resolves when the agent has drained.
   */
  async run(): Promise<void> {
    const { log, notifier } = this.deps;
    await this.recover();
    const delivery = this.deliverLoop().catch((error: unknown) => {
      log.error(`report delivery stopped unexpectedly: ${describeError(error)}`);
    });
    notifier.ready();
    if (this.deps.disabledReason) {
      log.info(`cloud jobs are disabled: ${this.deps.disabledReason}; the agent stays idle and takes no jobs`);
      this.setState('disabled');
      await waitForAbort(this.pollStop.signal);
    } else {
      this.status.polling = true;
      await this.pollLoop();
    }
    this.status.polling = false;
    this.setState('stopping');
    await this.flushOutbox();
    this.deliveryStop.abort();
    await delivery;
    // no status write may land after run() returns (the caller removes the file)
    this.statusClosed = true;
    await this.statusWriter;
  }

  /** First call: stop polling and let a running job drain; second call: stop the job now. */
  stop(): void {
    this.stopRequests += 1;
    const { log, clock, notifier } = this.deps;
    if (this.stopRequests === 1) {
      notifier.stopping();
      this.drainDeadline = clock.now() + this.deps.drainTimeoutMs;
      if (this.current) {
        log.info(
          `stopping: waiting up to ${Math.round(this.deps.drainTimeoutMs / 1000)}s for job ${this.current.offer.jobName} to finish (send the signal again to stop it now)`,
          { jobId: this.current.offer.jobId, jobName: this.current.offer.jobName },
        );
      } else {
        log.info('stopping: no job is running');
      }
      this.setState('stopping');
      this.pollStop.abort();
    } else if (this.current?.run) {
      log.warn('stopping now: the running job is stopped', { jobId: this.current.offer.jobId });
      this.current.run.stop('shutdown');
    }
  }

  // ---- recovery --------------------------------------------------------

  private async recover(): Promise<void> {
    const { journal, engine, log } = this.deps;
    for (const entry of journal.list()) {
      const { offer } = entry;
      const fields = { jobId: offer.jobId, jobName: offer.jobName };
      let report = entry.final;
      if (!report) {
        report = engine.interruptedReport(entry);
        log.warn(`job ${offer.jobName} was interrupted by an agent stop; reporting it FAILED, it is not run again`, {
          ...fields,
          jobStatus: report.status,
        });
        await journal.recordFinal(offer.jobId, report);
      }
      await this.settle(offer, Date.parse(entry.receivedAt), report);
    }
  }

  // ---- polling ---------------------------------------------------------

  private async pollLoop(): Promise<void> {
    const { clock, cloud, scheduler, log } = this.deps;
    const signal = this.pollStop.signal;
    while (!signal.aborted) {
      let delay: number;
      let state: 'idle' | 'backoff' = 'idle';
      try {
        const answer = await cloud.nextJob(signal);
        this.noteCloudOk();
        this.status.generation = cloud.generation();
        this.lastProgressAt = clock.now();
        this.backoffUntil = null;
        if (answer.kind === 'job') {
          this.status.lastPoll = { at: clock.now(), outcome: 'job' };
          await this.handleOffer(answer.offer);
          this.reclaimer?.poke();
          delay = scheduler.afterJob();
        } else {
          this.status.lastPoll = { at: clock.now(), outcome: 'no job' };
          delay = scheduler.afterIdle();
          log.debug(`no pending job; polling again in ${delay}ms`);
        }
      } catch (error) {
        if (signal.aborted) break;
        const failure = asCloudFailure(error);
        delay = scheduler.afterFailure(failure);
        this.lastProgressAt = clock.now();
        this.backoffUntil = clock.now() + delay;
        this.status.lastPoll = { at: clock.now(), outcome: failure.kind };
        this.noteCloudProblem(failure, delay);
        state = 'backoff';
      }
      if (signal.aborted) break;
      this.status.nextPollAt = clock.now() + delay;
      this.setState(state);
      try {
        if (delay > 0) await clock.sleep(delay, signal);
      } catch (error) {
        if (error instanceof AbortedError || signal.aborted) break;
        throw error;
      }
    }
    log.debug('poll loop stopped');
  }

  private noteCloudOk(): void {
    if (this.lastCloudProblem !== null) {
      this.deps.log.info('the cloud answers again', { cloudStatus: 'ok' });
      this.lastCloudProblem = null;
    }
  }

  // Logs a cloud problem once per change of problem (CONTRACT.md: auth errors once per change).
  private noteCloudProblem(failure: CloudFailure, delay: number): void {
    const key = `${failure.kind}:${failure.status ?? ''}:${failure.serverMessage ?? failure.message}`;
    const fields = { cloudStatus: failure.status ?? failure.kind };
    if (key !== this.lastCloudProblem) {
      this.lastCloudProblem = key;
      // TLS (pin mismatch, unknown CA) and auth problems need a person: say them loudly
      const loud = failure.kind === 'tls' || failure.kind === 'auth' || failure.kind === 'device-unknown';
      this.deps.log[loud ? 'error' : 'warn'](`polling for jobs failed: ${failure.message}; retrying in ${formatDelay(delay)}`, fields);
    } else {
      this.deps.log.debug(`polling for jobs failed again: ${failure.message}; retrying in ${formatDelay(delay)}`, fields);
    }
  }

  // ---- running a job ---------------------------------------------------

  private async handleOffer(offer: JobOffer): Promise<void> {
    const { log, history, engine, journal, clock } = this.deps;
    const fields = { jobId: offer.jobId, jobName: offer.jobName };
    const receivedAt = clock.now();
    const done = history.has(offer.jobId) ? await history.get(offer.jobId) : undefined;
    if (done) {
      log.warn(
        `the cloud handed out job ${offer.jobName} again, which this agent already finished (${done.report.status}); not running it again, sending its final report again`,
        { ...fields, jobStatus: done.report.status },
      );
      await this.enqueue(offer.jobId, done.report);
      return;
    }
    log.info(`received job ${offer.jobName}`, fields);
    // Journal first: the cloud already marked the job IN_PROGRESS, and validation
    // (user lookups) takes long enough that a crash inside it would strand the job.
    await journal.begin(offer, receivedAt);
    let job: NormalizedJob;
    try {
      job = await engine.validate(offer);
    } catch (error) {
      const problems = (error as { problems?: readonly string[] }).problems ?? [describeError(error)];
      const report = engine.rejectedReport(problems);
      log.warn(`job ${offer.jobName} rejected: ${report.reason}`, { ...fields, jobStatus: 'REJECTED' });
      await journal.recordFinal(offer.jobId, report);
      await this.settle(offer, receivedAt, report);
      return;
    }

    const current: Current = { offer, run: null, canceled: false, gone: false };
    this.current = current;
    this.status.currentJob = {
      jobId: offer.jobId,
      jobName: offer.jobName,
      step: null,
      stepIndex: 0,
      stepCount: job.steps.length,
      startedAt: receivedAt,
    };
    this.setState(this.stopRequests > 0 ? 'stopping' : 'running');
    const run = engine.start(job, {
      onStepStart: async (index, total, name) => {
        if (this.status.currentJob) Object.assign(this.status.currentJob, { step: name, stepIndex: index, stepCount: total });
        this.setState(this.stopRequests > 0 ? 'stopping' : 'running');
        await journal.recordStepStart(offer.jobId, index - 1, total, name);
      },
      // the engine logs each step's start and end with its fields
      onStepEnd: async (result, index) => {
        await journal.recordStep(offer.jobId, index - 1, result);
      },
    });
    current.run = run;
    if (this.stopRequests > 1) run.stop('shutdown');
    await this.enqueue(offer.jobId, run.snapshot());

    const report = await this.superviseRun(current, run);
    // the run holds every step's output buffers: nothing may keep it once it ended
    current.run = null;
    log.info(`job ${offer.jobName} ended ${report.status}: ${report.reason}`, { ...fields, jobStatus: report.status });
    await journal.recordFinal(offer.jobId, report);
    this.current = null;
    this.status.currentJob = null;
    if (current.gone) {
      log.warn(`job ${offer.jobName} was deleted on the server; its result is kept in history only`, fields);
      await this.deps.history.add(finished(offer, receivedAt, clock.now(), report));
      await journal.remove(offer.jobId);
      return;
    }
    await this.settle(offer, receivedAt, report);
  }

  // Waits for a run to end while sending progress and enforcing the drain deadline.
  private async superviseRun(current: Current, run: JobRunPort): Promise<StatusReport> {
    const { clock } = this.deps;
    const ticker = new AbortController();
    let drainKilled = false;
    const tick = async (): Promise<void> => {
      for (;;) {
        const untilDrain = this.drainDeadline === null ? Infinity : this.drainDeadline - clock.now();
        const wait = Math.max(0, Math.min(this.deps.progressIntervalMs, untilDrain));
        await clock.sleep(wait, ticker.signal);
        if (this.drainDeadline !== null && clock.now() >= this.drainDeadline && !drainKilled) {
          drainKilled = true;
          this.deps.log.warn(
            `job ${current.offer.jobName} did not finish within the drain timeout; stopping it`,
            { jobId: current.offer.jobId },
          );
          run.stop('shutdown');
        }
        if (!current.canceled && !current.gone) await this.enqueue(current.offer.jobId, run.snapshot());
        if (this.drainDeadline !== null) this.setState('stopping');
      }
    };
    const ticking = tick().catch(() => undefined);
    try {
      return await run.done;
    } finally {
      ticker.abort();
      await ticking;
    }
  }

  // Hands a final report to the outbox and history, then forgets the journal entry.
  private async settle(offer: JobOffer, receivedAt: number, report: StatusReport): Promise<void> {
    const { history, journal, outbox, clock } = this.deps;
    if (!history.has(offer.jobId)) {
      if (!outbox.hasPendingFinal(offer.jobId)) await this.enqueue(offer.jobId, report);
      await history.add(finished(offer, receivedAt, clock.now(), report));
    }
    await journal.remove(offer.jobId);
    this.writeStatus();
  }

  private async enqueue(jobId: string, report: StatusReport): Promise<void> {
    await this.deps.outbox.enqueue(jobId, report);
  }

  // ---- delivery --------------------------------------------------------

  private async deliverLoop(): Promise<void> {
    const signal = this.deliveryStop.signal;
    const state: DeliveryState = { cutter: createReportCutter(), lastProblem: null };
    while (!signal.aborted) {
      // The report lives only in deliverNext's frame: this one stays suspended
      // while the loop waits, and would keep the last report (megabytes after
      // a job with much output) alive until the next one.
      const step = await this.deliverNext(state, signal);
      if (step === 'stop') break;
      if (step === 'empty') {
        try {
          await this.deps.outbox.waitForEntry(signal);
        } catch {
          break;
        }
      }
    }
  }

  // Sends the oldest waiting report once; 'stop' when the loop must end.
  private async deliverNext(state: DeliveryState, signal: AbortSignal): Promise<'empty' | 'next' | 'stop'> {
    const { outbox, cloud, deliveryRetry, log } = this.deps;
    const entry = await outbox.next();
    if (!entry) return 'empty';
    const fields = { jobId: entry.jobId, jobStatus: entry.report.status };
    const body = state.cutter.bodyFor(entry.report);
    let outcome: StatusOutcome;
    try {
      outcome = await cloud.sendStatus(entry.jobId, body, signal);
    } catch (error) {
      if (signal.aborted) return 'stop';
      this.status.reports.retried += 1;
      this.writeStatus();
      const failure = asCloudFailure(error);
      const delay = deliveryRetry.next(failure);
      const key = `${failure.kind}:${failure.message}`;
      if (key !== state.lastProblem) {
        state.lastProblem = key;
        log.warn(`sending the ${entry.report.status} report failed: ${failure.message}; it stays queued, retrying in ${formatDelay(delay)}`, {
          ...fields,
          cloudStatus: failure.status ?? failure.kind,
        });
      }
      try {
        // a new report does not cut the wait short: keep the server's pace
        await this.deps.clock.sleep(delay, signal);
      } catch {
        return 'stop';
      }
      return 'next';
    }
    if (outcome === 'too-large') {
      // never the same body again: cut it, or give it up so later reports go out
      if (this.onTooLarge(entry, state.cutter.onTooLarge(body))) await outbox.ack(entry.seq);
      this.writeStatus();
      return 'next';
    }
    if (state.lastProblem !== null) log.info('reports are delivered again', fields);
    state.lastProblem = null;
    deliveryRetry.reset();
    await outbox.ack(entry.seq);
    this.onDelivered(entry, outcome);
    this.writeStatus();
    return 'next';
  }

  // Logs a 413 and counts it; returns whether the report is given up.
  private onTooLarge(entry: OutboxEntry, verdict: TooLargeVerdict): boolean {
    const fields = { jobId: entry.jobId, jobStatus: entry.report.status, cloudStatus: 413 };
    const kept = entry.final ? '; its full result is kept in history (`cloudjobs history`)' : '';
    if (verdict.kind === 'give-up') {
      this.status.reports.refused += 1;
      this.deps.log.error(
        `the cloud refused the ${entry.report.status} report as too large (413) even cut to ${verdict.refusedBytes} bytes; gave it up so later reports are sent${kept}`,
        fields,
      );
      return true;
    }
    this.status.reports.cut += 1;
    this.deps.log.warn(
      `the cloud refused the ${entry.report.status} report of ${verdict.refusedBytes} bytes as too large (413); sending it and later reports cut to at most ${verdict.ceiling} bytes`,
      fields,
    );
    return false;
  }

  private onDelivered(entry: OutboxEntry, outcome: StatusOutcome): void {
    const { log } = this.deps;
    const counts = this.status.reports;
    if (outcome === 'gone' || outcome === 'refused') counts.refused += 1;
    else if (outcome === 'accepted') counts.delivered += 1;
    const fields = { jobId: entry.jobId, jobStatus: entry.report.status, cloudStatus: outcome };
    const current = this.current && this.current.offer.jobId === entry.jobId ? this.current : null;
    switch (outcome) {
      case 'accepted':
        if (entry.final) {
          log.info(`final report ${entry.report.status} delivered`, fields);
          this.reclaimer?.poke();
        } else {
          log.debug(`${entry.report.status} report delivered`, fields);
        }
        return;
      case 'canceled':
        if (current && !current.canceled) {
          log.warn('the cloud canceled this job; stopping it', fields);
          current.canceled = true;
          current.run?.stop('cancel');
        } else if (entry.final) {
          log.info(`the cloud no longer takes reports for this canceled job; dropped the ${entry.report.status} report`, fields);
        }
        return;
      case 'gone':
        log.warn('the cloud no longer knows this job (Job status not found); nothing more is reported for it', fields);
        if (current) current.gone = true;
        return;
      case 'refused':
        log.error(`the cloud refused the ${entry.report.status} report (400); dropped it`, fields);
        return;
      case 'too-large':
        return; // handled before the entry is acknowledged
    }
  }

  private async flushOutbox(): Promise<void> {
    const { clock, outbox, log } = this.deps;
    const deadline = clock.now() + this.deps.flushTimeoutMs;
    while (outbox.stats().count > 0 && clock.now() < deadline) {
      try {
        await clock.sleep(50);
      } catch {
        break;
      }
    }
    const left = outbox.stats().count;
    if (left > 0) log.info(`stopping with ${left} report${left === 1 ? '' : 's'} still queued; they are sent at the next start`);
  }

  // ---- status ----------------------------------------------------------

  private setState(state: AgentStatus['state']): void {
    if (this.stopRequests > 0 && state !== 'stopping') state = 'stopping';
    this.status.state = state;
    this.deps.notifier.status(this.describe());
    this.writeStatus();
  }

  private outboxStats(): AgentStatus['outbox'] {
    const stats = this.deps.outbox.stats();
    const now = this.deps.clock.now();
    return {
      count: stats.count,
      bytes: stats.bytes,
      oldestAgeSeconds: stats.oldestEnqueuedAt === null ? null : Math.max(0, Math.round((now - stats.oldestEnqueuedAt) / 1000)),
    };
  }

  // Writes the status file when something an operator would see changed (state,
  // job, step, generation, poll outcome, queue length), else at most every
  // STATUS_REFRESH_MS: idle polls must not cost a file write each. Writes never
  // overlap and the last state always lands.
  private writeStatus(): void {
    // the key is built from the fields themselves: an idle poll must not build
    // the whole status (and its describe() sentence) only to find nothing changed
    const s = this.status;
    const job = s.currentJob;
    const r = s.reports;
    const key = `${s.state}|${s.generation}|${s.lastPoll?.outcome ?? ''}|${this.deps.outbox.stats().count}|${r.refused}|${r.retried}|${r.cut}|${s.disabledReason}|${
      job ? JSON.stringify(job) : ''
    }`;
    const now = this.deps.clock.now();
    if (key === this.statusKey && now - this.statusWrittenAt < STATUS_REFRESH_MS) return;
    this.statusKey = key;
    this.statusWrittenAt = now;
    this.statusDirty = true;
    if (this.statusWriter || this.statusClosed) return;
    this.statusWriter = (async () => {
      while (this.statusDirty && !this.statusClosed) {
        this.statusDirty = false;
        this.status.updatedAt = this.deps.clock.now();
        try {
          await this.deps.writeStatus(this.getStatus());
        } catch (error) {
          this.deps.log.debug(`could not write the status file: ${describeError(error)}`);
        }
      }
      this.statusWriter = null;
    })();
  }
}

function finished(offer: JobOffer, receivedAt: number, finishedAt: number, report: StatusReport) {
  return {
    jobId: offer.jobId,
    jobName: offer.jobName,
    receivedAt: new Date(receivedAt).toISOString(),
    finishedAt: new Date(finishedAt).toISOString(),
    report,
  };
}

function asCloudFailure(error: unknown): CloudFailure {
  if (error && typeof error === 'object' && 'kind' in error) return error as CloudFailure;
  return { kind: 'internal', message: describeError(error) };
}

function formatDelay(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)}ms`;
  if (ms < 120_000) return `${Math.round(ms / 1000)}s`;
  return `${Math.round(ms / 60_000)}m`;
}

function waitForAbort(signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.resolve();
  return new Promise((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }));
}
