// The agent: one poll loop that takes jobs one at a time and runs them, and one
// delivery loop that drains the durable outbox to the cloud. Everything it
// touches comes in through AgentDeps so tests can drive it.
import type { Clock } from '../clock/clock.js';
import type { PollScheduler, RetryBackoff } from '../cloud/backoff.js';
import type { CloudClient, StatusOutcome } from '../cloud/client.js';
import type { RefusedOffer } from '../cloud/parse-answer.js';
import type { PushStatus } from '../cloud/push-settings.js';
import type { ApiGeneration, JobOffer, StatusReport } from '../contract/types.js';
import { AbortedError, classifyLocalFault, describeError, LoopDiedError, type LocalFault } from '../errors/errors.js';
import type { Log } from '../log/log.js';
import type { NormalizedJob, StepResult } from '../jobs/types.js';
import type { BootIdentity } from '../state/boot-identity.js';
import { isPollLoopHealthy } from '../service/health.js';
import { decideAfterReboot, decideAfterRestart, decideRebootRequest, decideRebootUser } from './reboot-decision.js';
import { cutStepResult, type PlannedRun, type StopCause } from './stop-cause.js';
import { handOverBlocker, plannedRuns } from './handover.js';
import type { History, HistoryEntry } from '../state/history.js';
import type { Journal, JournalEntry, RebootingRecord } from '../state/journal.js';
import type { Outbox, OutboxEntry } from '../state/outbox.js';
import { createIdleReclaimer, type IdleReclaimer } from './idle-reclaim.js';
import { createReportCutter, type ReportCutter, type TooLargeVerdict } from './report-cut.js';
import { createWakeGate, type WakeGate } from './wake-gate.js';
import type { JobGate, JobGateStatus } from './job-gate.js';
import type { JobLimits } from './job-limits.js';
import type { SelfUpdateOutcome } from '../state/self-update-outcome.js';

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
  /** Once done: the step that asked for a reboot (the run ended after it), else null. */
  readonly rebootRequest: { label: string; stepsDone: number } | null;
  /** Starts no further step; the job ends FAILED with `reason` unless every step ran. */
  halt(reason: string): void;
}

/** The long-lived loops the agent watches: if one dies, the agent fails (see Agent.run). */
export type LoopName = 'poll' | 'delivery' | 'progress' | 'status writer';

/** The job engine as the agent uses it. */
export interface EnginePort {
  /** Validates an offer (its signature first); rejects with the list of problems (JobValidationError). `resumed`: accepted before a reboot. */
  validate(offer: JobOffer, options?: { resumed?: boolean }): Promise<NormalizedJob>;
  /** Runs `job`; with `start`, after the steps that already ran (a job resumed after a reboot). */
  start(job: NormalizedJob, hooks: {
    onStepStart(index: number, total: number, name: string): void | Promise<void>;
    onStepEnd(result: StepResult, index: number, total: number): void | Promise<void>;
  }, start?: { finished: readonly StepResult[]; startedAtMs: number }): JobRunPort;
  rejectedReport(problems: readonly string[]): StatusReport;
  /** The FAILED report of a job that was never started (nothing ran), with `reason`. */
  unstartedReport(reason: string): StatusReport;
  interruptedReport(entry: JournalEntry): StatusReport;
  /** The job's whole time limit (timeout_seconds, else jobs.default_timeout). */
  timeoutOf(offer: JobOffer): Promise<number>;
  /** A final report from the journal alone (a rebooting job that ends without running on). */
  journaledReport(entry: JournalEntry, status: 'FAILED' | 'TIMED_OUT', reason: string): StatusReport;
  /** Removes the work dirs an interrupted job left behind (logs what it did; never rejects). */
  removeLeftovers?(jobId: string): Promise<void>;
}

/** How the agent reboots for a job, and tells a reboot from a restart. */
export interface RebootPort {
  /** The boot the agent runs in (boot_id and the runtime_dir marker). */
  currentBoot(): Promise<BootIdentity>;
  /** Runs jobs.reboot_command; rejects with a sentence when it fails. */
  requestReboot(): Promise<void>;
  /** jobs.max_reboots. */
  maxReboots: number;
  /** jobs.reboot_users: users besides root whose steps may ask for a reboot. */
  rebootUsers: readonly string[];
  /** jobs.reboot_timeout. */
  rebootTimeoutMs: number;
  /** What `reboot` runs, for messages ("systemctl reboot"). */
  commandText: string;
}

/** systemd's view of the agent (no-ops outside systemd). */
export interface NotifierPort {
  ready(): void;
  status(text: string): void;
  stopping(): void;
  /** EXTEND_TIMEOUT_USEC: systemd waits at least `ms` more for the stop to finish. */
  extendTimeout?(ms: number): void;
}

/** What `cloudjobs status` shows, kept current under runtime_dir. */
export interface AgentStatus {
  agentVersion: string;
  pid: number;
  state: 'starting' | 'idle' | 'running' | 'rebooting' | 'backoff' | 'degraded' | 'disabled' | 'stopping' | 'held';
  /** "<path>: <errno>: <what>" while the state directory cannot be written, else null. */
  degraded: string | null;
  polling: boolean;
  disabledReason: string | null;
  identitySource: string;
  generation: ApiGeneration | null;
  currentJob: {
    jobId: string;
    jobName: string;
    step: string | null;
    stepIndex: number;
    stepCount: number;
    startedAt: number;
    /** Reboots the job went through so far (it runs on after them). */
    reboots?: number;
    /** status_details.limits of the last progress report: the limits in force and the peak memory so far. */
    limits?: unknown;
  } | null;
  lastPoll: { at: number; outcome: string } | null;
  nextPollAt: number | null;
  outbox: { count: number; bytes: number; oldestAgeSeconds: number | null };
  /** Delivery counters since start: refused = dropped on the API's own refusal (or too large even when cut). */
  reports: DeliveryCounts;
  updatedAt: number;
  /** The MQTT push channel, or null when none is configured. */
  push: PushStatus | null;
  /** The same sentence systemd gets as STATUS=. */
  describe?: string;
  /** Holds and maintenance windows (job-gate.ts), or null when the agent has no gate. */
  hold: JobGateStatus | null;
  /** The limits a job runs under (job-limits.ts), or null when not given. */
  limits: JobLimits | null;
}

/** Facts the agent reports as they happen (the metrics, metrics/agent-metrics.ts). */
export interface AgentObserver {
  /** A poll ended: `outcome` as in AgentStatus.lastPoll ('job', 'no job' or the failure kind). */
  polled(poll: { at: number; outcome: string }): void;
  /** A job ended with a final report (once per job). */
  jobFinished(status: StatusReport['status'], durationMs: number): void;
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
  reboot: RebootPort;
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
  /** Why the agent stops (stop-cause.ts), from root's word only (systemd's job for the unit) and `running` as the agent planned them; absent: every stop drains. */
  stopCause?(running: readonly PlannedRun[]): Promise<StopCause>;
  /** The self-update handler's outcome for a job (state/self-update-outcome.ts); absent: none is looked for. */
  selfUpdate?: {
    read(jobId: string): Promise<SelfUpdateOutcome | null>;
    remove(jobId: string): Promise<void>;
  };
  /** Time systemd must allow on stop beyond the drain deadline (kill grace, flush, margin); sent as EXTEND_TIMEOUT_USEC. */
  stopAllowanceMs?: number;
  /** Checks state_dir without writing (checkStateDir) before each poll; a fault means degraded mode. */
  checkState?(): Promise<LocalFault | null>;
  /** Proves state_dir takes writes again (probeStateDir); asked every poll interval while degraded. */
  probeState?(): Promise<LocalFault | null>;
  /** TEST ONLY (CLOUDJOBS_TEST_LOOP_DEATH, read by main.ts): a rejection that stands for `loop` dying. */
  injectLoopDeath?(loop: LoopName): Promise<never> | null;
  /** The push channel's state for status (absent: no push configured). */
  pushStatus?: () => PushStatus;
  /** A full garbage collection, run once the agent is quiet after a job (service/memory.ts); none when absent. */
  reclaimMemory?: () => void;
  /** Asked before each poll: while it holds, the cloud is not asked for a job (job-gate.ts). */
  jobGate?: JobGate;
  /** Told of polls and finished jobs (metrics). */
  observer?: AgentObserver;
  /** Shown in status. */
  limits?: JobLimits;
}

// How long after the last job or final report the memory a job left is collected.
const RECLAIM_AFTER_MS = 1000;

// An unchanged status is rewritten at most this often (so `cloudjobs status` shows a recent "last poll").
const STATUS_REFRESH_MS = 15_000;
// Before rebooting for a job, the IN_PROGRESS report saying so gets this long to reach the cloud.
const REBOOT_REPORT_WAIT_MS = 10_000;

/** What the delivery loop keeps between reports. */
interface DeliveryState {
  cutter: ReportCutter;
  /** The last failure logged, so a repeated one is not logged again. */
  lastProblem: string | null;
}

interface Current {
  offer: JobOffer;
  job: NormalizedJob;
  run: JobRunPort | null;
  canceled: boolean;
  gone: boolean;
  /** Set when root restarts the agent: the job goes on in the next agent process. */
  handover: Handover | null;
  /** While the stop cause is being decided: no next step starts before it is. */
  deciding: Promise<void> | null;
  /** onStepStart hooks in flight: a step between its start hook and its journal record. */
  starting: number;
  /** Set by superviseRun: called once the job is journaled RESTARTING. */
  handoverWaiter?: (() => void) | null;
  /** The first local fault seen while the job ran; its final report says so. */
  fault: string | null;
}

/** A job to hand to the next agent process once no step of it runs (handover.ts). */
interface Handover {
  cause: Exclude<StopCause, { kind: 'outside' }>;
  /** Journaled: no step result or start may be recorded any more. */
  journaled: boolean;
}

/** A final report the state directory could not take yet: kept in memory, sent directly, stored when the disk recovers. */
interface HeldFinal {
  offer: JobOffer;
  receivedAt: number;
  report: StatusReport;
  /** The job has a journal entry (begin() succeeded) to finish and remove. */
  journaled: boolean;
  /** The cloud has it (sent directly), the outbox has it, or the cloud must not get it (job deleted): not to be sent. */
  delivered: boolean;
}

// Exit status of `cloudjobs run` when a loop died or a bug escaped (EX_SOFTWARE); systemd restarts it.
export const EXIT_LOOP_DIED = 70;

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
 * - A job that asks for a reboot is journaled REBOOTING (durably, with the
 *   boot it asked in) before its report is sent and before the reboot command
 *   runs; it is resumed only after the journal says so and the boot changed
 *   (reboot-decision.ts), and marked running again on disk before its next
 *   step. While a job is REBOOTING the agent polls for no other job.
 *
 * ERROR BOUNDARY
 * - Cloud failures (network, TLS, HTTP answers) are retried with backoff by
 *   the loop that met them; they never change the agent's mode.
 * - A local fault (classifyLocalFault: ENOSPC, EROFS, EIO, EACCES... on
 *   state_dir) puts the agent in degraded mode: no poll (a job could not be
 *   journaled), the running job starts no further step, delivery goes on,
 *   final reports the disk cannot take are held in memory and sent directly;
 *   every poll interval state_dir is probed, and the agent returns by itself.
 * - Anything else is a bug: the loop it happened in dies, run() stops the
 *   rest and rejects with LoopDiedError (exit EXIT_LOOP_DIED), and isHealthy()
 *   is false from that moment, so systemd restarts the agent either way.
 */

/** The running agent: call run(), then stop() to drain and end it. */
export class Agent {
  private readonly deps: AgentDeps;
  private readonly pollStop = new AbortController();
  private readonly deliveryStop = new AbortController();
  private readonly reclaimer: IdleReclaimer | null;
  private current: Current | null = null;
  /** REBOOTING jobs found at start, decided before the first poll. */
  private readonly rebootingAtStart: JournalEntry[] = [];
  private stopRequests = 0;
  /** Set by runJob: the offer just taken ran (so the next poll may follow at once). */
  private ranJob = false;
  private drainDeadline: number | null = null;
  /** Cancels the drain deadline's timer; set by the first stop(). */
  private cancelDrainTimer: (() => void) | null = null;
  private drainExpired = false;
  private lastExtendAt: number | null = null;
  private lastCloudProblem: string | null = null;
  private lastProgressAt: number;
  private backoffUntil: number | null = null;
  private status: AgentStatus;
  private statusWriter: Promise<void> | null = null;
  private statusClosed = false;
  private statusDirty = false;
  private statusKey = '';
  private statusWrittenAt = 0;
  private statusFault: string | null = null;
  private degraded: LocalFault | null = null;
  private recoveryWaiters: (() => void)[] = [];
  private recoveryPending = false;
  private readonly held = new Map<string, HeldFinal>();
  private ackPending: number | null = null;
  private deadLoop: LoopDiedError | null = null;
  private readonly wakes: WakeGate;

  constructor(deps: AgentDeps) {
    this.deps = deps;
    this.lastProgressAt = deps.clock.monotonic();
    this.wakes = createWakeGate(deps.clock);
    this.reclaimer = deps.reclaimMemory
      ? createIdleReclaimer({ clock: deps.clock, reclaim: deps.reclaimMemory, delayMs: RECLAIM_AFTER_MS, signal: this.deliveryStop.signal })
      : null;
    this.status = {
      agentVersion: deps.version,
      pid: deps.pid,
      state: 'starting',
      degraded: null,
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
      push: null,
      hold: null,
      limits: deps.limits ?? null,
    };
  }

  /** A push notification arrived (or the channel connected): poll now, or right after the running job. */
  wake(): void {
    this.wakes.wake();
  }

  /** A hold changed (job-gate.ts noticed a file change): refresh status and STATUS=. */
  holdChanged(): void {
    if (this.status.state !== 'starting') this.setState(this.status.state);
  }

  /** The push channel changed state: refresh status and STATUS=. */
  pushChanged(): void {
    if (this.status.state !== 'starting') this.setState(this.status.state);
  }

  /** The agent's current status (the seed adapter's getStatus()). */
  getStatus(): AgentStatus {
    return {
      ...this.status,
      outbox: this.outboxStats(),
      reports: { ...this.status.reports },
      push: this.deps.pushStatus?.() ?? null,
      hold: this.deps.jobGate?.status() ?? null,
      describe: this.describe(),
    };
  }

  /** The last `limit` finished jobs, newest first (the seed adapter's getJobHistory()). */
  getJobHistory(limit: number): Promise<HistoryEntry[]> {
    return this.deps.history.list(limit);
  }

  /** Whether the watchdog may be fed: the poll loop made progress lately or is deliberately waiting. */
  isHealthy(): boolean {
    if (this.deadLoop) return false;
    if (this.current || ['disabled', 'stopping', 'rebooting'].includes(this.status.state)) return true;
    // a poll in flight may take up to the request time limit before it counts as progress
    return isPollLoopHealthy({
      now: this.deps.clock.monotonic(),
      lastProgressAt: this.lastProgressAt,
      intervalMs: Math.max(this.deps.pollIntervalMs, this.deps.requestTimeoutMs),
      backoffUntil: this.backoffUntil,
    });
  }

  /** A one-line description of what the agent does, for systemd's STATUS=; a fault comes first. */
  describe(): string {
    if (this.deadLoop) return `failed: ${this.deadLoop.message}; exiting to be restarted`;
    const text = this.describeState();
    const status = this.statusFault ? `; cannot write the status file: ${this.statusFault}` : '';
    if (this.degraded && this.status.state !== 'degraded') return `degraded: ${this.degraded.message}; ${text}${status}`;
    return `${text}${status}`;
  }

  private describeState(): string {
    const s = this.status;
    const now = this.deps.clock.now();
    const queued = this.outboxStats().count;
    const refused = s.reports.refused;
    const push = this.deps.pushStatus?.();
    const held = s.state !== 'held' ? this.deps.jobGate?.status().reason : null;
    const tail = `${held ? `; next job ${held}` : ''}${push ? `; push ${push.state}` : ''}${queued > 0 ? `; ${queued} report${queued === 1 ? '' : 's'} waiting for the cloud` : ''}${
      refused > 0 ? `; ${refused} report${refused === 1 ? '' : 's'} refused by the cloud` : ''
    }`;
    switch (s.state) {
      case 'starting':
        return 'starting';
      case 'degraded':
        return `degraded: ${this.degraded?.message ?? 'state directory not writable'}; taking no new job, checking again every ${formatDelay(this.deps.pollIntervalMs)}${tail}`;
      case 'held':
        return `${this.deps.jobGate?.status().reason ?? 'held'}; taking no new job${tail}`;
      case 'disabled':
        return `idle: jobs disabled (${s.disabledReason ?? 'disabled'})${tail}`;
      case 'running': {
        const job = s.currentJob;
        if (!job) return `running a job${tail}`;
        const step = job.step ? ` (step ${job.stepIndex}/${job.stepCount}: ${job.step})` : '';
        if (job.reboots) return `resumed job ${job.jobName} after reboot${step}${tail}`;
        return `running job ${job.jobName}${step}${tail}`;
      }
      case 'rebooting':
        return `rebooting for job ${s.currentJob?.jobName ?? 'a job'}${tail}`;
      case 'backoff': {
        const wait = s.nextPollAt ? Math.max(0, Math.round((s.nextPollAt - now) / 1000)) : 0;
        return `cloud unreachable (${s.lastPoll?.outcome ?? 'error'}), retry in ${wait}s${tail}`;
      }
      case 'stopping': {
        if (this.current) {
          const left = this.drainDeadline ? Math.max(0, Math.round((this.drainDeadline - this.deps.clock.monotonic()) / 1000)) : 0;
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
    await this.recoverOrDegrade();
    const delivery = this.deliverLoop();
    const deliveryWatch = this.watch('delivery', this.deliveryStop.signal, delivery);
    notifier.ready();
    if (this.deps.disabledReason) {
      log.info(`cloud jobs are disabled: ${this.deps.disabledReason}; the agent stays idle and takes no jobs`);
      this.setState('disabled');
      for (const entry of this.rebootingAtStart.splice(0)) {
        await this.finishJournaled(entry, 'FAILED', `could not resume after the reboot: cloud jobs are disabled (${this.deps.disabledReason})`);
      }
      await waitForAbort(this.pollStop.signal);
    } else {
      this.status.polling = true;
      const polling = this.pollLoop();
      await this.watch('poll', this.pollStop.signal, polling);
      // a death elsewhere stopped the job and polling: let the loop hand its report to the outbox
      await polling.catch(() => undefined);
    }
    this.status.polling = false;
    if (!this.deadLoop) {
      this.setState('stopping');
      await this.flushOutbox();
      await this.sendHeldFinals(this.deliveryStop.signal, this.deps.flushTimeoutMs);
      this.reportHeldAtStop();
    }
    this.cancelDrainTimer?.();
    this.deliveryStop.abort();
    await deliveryWatch;
    await delivery.catch(() => undefined);
    // no status write may land after run() returns (the caller removes the file)
    this.statusClosed = true;
    await this.statusWriter;
    if (this.deadLoop) throw this.deadLoop;
  }

  /** First call: stop polling and let a running job drain; second call: stop the job now. */
  stop(): void {
    this.stopRequests += 1;
    const { log, clock, notifier } = this.deps;
    if (this.stopRequests === 1) {
      notifier.stopping();
      this.drainDeadline = clock.monotonic() + this.deps.drainTimeoutMs;
      if (this.current) {
        log.info(
          `stopping: waiting up to ${Math.round(this.deps.drainTimeoutMs / 1000)}s for job ${this.current.offer.jobName} to finish (send the signal again to stop it now)`,
          { jobId: this.current.offer.jobId, jobName: this.current.offer.jobName },
        );
      } else {
        log.info('stopping: no job is running');
      }
      this.setState('stopping');
      this.extendStopTimeout();
      this.pollStop.abort();
      // exact: its own timer, not the next progress tick (which may be progress_interval away)
      this.cancelDrainTimer = clock.timer(this.deps.drainTimeoutMs, () => this.onDrainDeadline());
      if (this.current && this.deps.stopCause) {
        const current = this.current;
        current.deciding = this.checkStopCause(current);
      }
    } else if (this.current?.run) {
      log.warn('stopping now: the running job is stopped', { jobId: this.current.offer.jobId });
      this.current.run.stop('shutdown');
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

  // ---- recovery --------------------------------------------------------

  // A state_dir that cannot be written at start must not become a restart storm:
  // degrade, and recover the journal once the disk takes writes again.
  private async recoverOrDegrade(): Promise<void> {
    try {
      await this.recover();
      this.recoveryPending = false;
    } catch (error) {
      this.recoveryPending = true;
      this.enterDegraded(this.asLocalFault(error), 'recovering the journal');
    }
  }

  private async recover(): Promise<void> {
    const { journal, engine, log } = this.deps;
    for (const entry of journal.list()) {
      const { offer } = entry;
      const fields = { jobId: offer.jobId, jobName: offer.jobName };
      let report = entry.final;
      if (!report && entry.rebooting) {
        // recovery may run again after a fault: each REBOOTING job is decided once
        if (!this.rebootingAtStart.some((e) => e.jobId === entry.jobId)) this.rebootingAtStart.push(entry);
        continue;
      }
      if (!report) {
        report = engine.interruptedReport(entry);
        log.warn(`job ${offer.jobName} was interrupted by an agent stop; reporting it FAILED, it is not run again`, {
          ...fields,
          jobStatus: report.status,
        });
        await journal.recordFinal(offer.jobId, report);
        await engine.removeLeftovers?.(offer.jobId);
      }
      await this.settle(offer, Date.parse(entry.receivedAt), report);
    }
  }

  // ---- polling ---------------------------------------------------------

  private async pollLoop(): Promise<void> {
    const { clock, scheduler, log } = this.deps;
    const signal = this.pollStop.signal;
    // a job that asked for a reboot goes on (or ends) before any new job is taken
    for (const entry of this.rebootingAtStart.splice(0)) await this.awaitReboot(entry);
    while (!signal.aborted) {
      if (await this.waitWhileHeld(signal)) continue;
      let delay: number;
      let state: 'idle' | 'backoff' | 'degraded';
      let offer: JobOffer | null = null;
      let refused: RefusedOffer | null = null;
      if (await this.isStateUnusable(signal)) {
        this.lastProgressAt = clock.monotonic();
        this.backoffUntil = null;
        await this.sendHeldFinals(signal, this.deps.requestTimeoutMs);
        delay = this.deps.pollIntervalMs;
        state = 'degraded';
      } else {
        ({ delay, state, offer, refused } = await this.pollCloud(signal));
        if (!signal.aborted && this.status.lastPoll) this.deps.observer?.polled(this.status.lastPoll);
      }
      // outside the poll's try: nothing the job does is a cloud failure (ERROR BOUNDARY)
      if (offer !== null) {
        this.ranJob = false;
        await this.takeOffer(offer);
        this.reclaimer?.poke();
        // an offer that ran nothing (a re-offer of a finished job, a REJECTED one) must not become a tight poll loop
        delay = this.ranJob ? scheduler.afterJob() : Math.max(scheduler.afterJob(), NOTHING_RAN_GAP_MS);
        if (this.degraded) state = 'degraded';
      } else if (refused !== null) {
        await this.takeRefusal(refused);
        delay = Math.max(scheduler.afterJob(), NOTHING_RAN_GAP_MS);
        if (this.degraded) state = 'degraded';
      }
      if (signal.aborted) break;
      this.status.nextPollAt = clock.now() + delay;
      this.setState(state);
      try {
        // a push wake-up cuts an idle wait short, never a failure backoff (Retry-After, the herd rule)
        if (state === 'idle') await this.wakes.sleep(delay, signal);
        else if (delay > 0) await clock.sleep(delay, signal);
      } catch (error) {
        if (error instanceof AbortedError || signal.aborted) break;
        throw error;
      }
    }
    log.debug('poll loop stopped');
  }

  // The job gate (job-gate.ts): while it holds, no poll; the loop waits (at most a poll interval) and asks again.
  private async waitWhileHeld(signal: AbortSignal): Promise<boolean> {
    const gate = this.deps.jobGate;
    if (!gate || !(await gate.check()).held) return false;
    this.lastProgressAt = this.deps.clock.now();
    this.backoffUntil = null;
    this.status.nextPollAt = null;
    this.setState('held');
    await gate.wait(this.deps.pollIntervalMs, signal).catch((error: unknown) => {
      if (!(error instanceof AbortedError)) throw error;
    });
    return true;
  }

  // One poll: the cloud's answer, or its failure turned into a backoff. Only the cloud call is inside the try.
  private async pollCloud(signal: AbortSignal): Promise<PollOutcome> {
    const { clock, cloud, scheduler, log } = this.deps;
    try {
      this.wakes.pollStarting();
      const answer = await cloud.nextJob(signal);
      this.noteCloudOk();
      this.status.generation = cloud.generation();
      this.lastProgressAt = clock.monotonic();
      this.backoffUntil = null;
      if (answer.kind === 'job') {
        this.status.lastPoll = { at: clock.now(), outcome: 'job' };
        return { delay: 0, state: 'idle', offer: answer.offer, refused: null };
      }
      if (answer.kind === 'refused') {
        this.status.lastPoll = { at: clock.now(), outcome: 'job' };
        return { delay: 0, state: 'idle', offer: null, refused: answer };
      }
      this.status.lastPoll = { at: clock.now(), outcome: 'no job' };
      const delay = scheduler.afterIdle();
      log.debug(`no pending job; polling again in ${delay}ms`);
      return { delay, state: 'idle', offer: null, refused: null };
    } catch (error) {
      if (signal.aborted) return { delay: 0, state: 'idle', offer: null, refused: null };
      const failure = asCloudFailure(error);
      const delay = scheduler.afterFailure(failure);
      this.lastProgressAt = clock.monotonic();
      this.backoffUntil = clock.monotonic() + delay;
      this.status.lastPoll = { at: clock.now(), outcome: failure.kind };
      this.noteCloudProblem(failure, delay);
      return { delay, state: 'backoff', offer: null, refused: null };
    }
  }

  private noteCloudOk(): void {
    if (this.lastCloudProblem !== null) {
      this.deps.log.info('the cloud answers again', { cloudStatus: 'ok' });
      this.lastCloudProblem = null;
    }
  }

  // Logs a cloud problem once per change of problem (test/cloud/CONTRACT.md "Authentication": once per change).
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

  // A local fault while taking a job degrades the agent; anything else is a bug and kills the poll loop.
  private async takeOffer(offer: JobOffer): Promise<void> {
    try {
      await this.handleOffer(offer);
    } catch (error) {
      this.enterDegraded(this.asLocalFault(error), `handling job ${offer.jobName}`);
    }
  }

  private async takeRefusal(refused: RefusedOffer): Promise<void> {
    try {
      await this.refuseOffer(refused);
    } catch (error) {
      this.enterDegraded(this.asLocalFault(error), `recording refused job ${refused.jobName}`);
    }
  }

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
    try {
      await journal.begin(offer, receivedAt);
    } catch (error) {
      const fault = this.asLocalFault(error);
      this.enterDegraded(fault, `journaling job ${offer.jobName}`);
      const report = engine.unstartedReport(`not started: the agent could not journal the job (${fault.message}); nothing ran`);
      log.error(`job ${offer.jobName} ended ${report.status}: ${report.reason}`, { ...fields, jobStatus: report.status });
      await this.finish({ offer, receivedAt, report, journaled: false, delivered: false });
      return;
    }
    let job: NormalizedJob;
    try {
      job = await engine.validate(offer);
    } catch (error) {
      const problems = (error as { problems?: readonly string[] }).problems ?? [describeError(error)];
      const report = engine.rejectedReport(problems);
      log.warn(`job ${offer.jobName} rejected: ${report.reason}`, { ...fields, jobStatus: 'REJECTED' });
      await this.finish({ offer, receivedAt, report, journaled: true, delivered: false });
      return;
    }
    await this.runJob(offer, job, receivedAt);
  }

  // Runs a validated job to its end; `resume` holds what ran before a reboot.
  private async runJob(offer: JobOffer, job: NormalizedJob, receivedAt: number, resume?: Resume): Promise<void> {
    const { log, engine, journal } = this.deps;
    const fields = { jobId: offer.jobId, jobName: offer.jobName };
    this.ranJob = true;
    const current: Current = { offer, job, run: null, canceled: false, gone: false, handover: null, deciding: null, starting: 0, fault: null };
    this.current = current;
    this.status.currentJob = {
      jobId: offer.jobId,
      jobName: offer.jobName,
      step: null,
      stepIndex: 0,
      stepCount: job.steps.length,
      startedAt: receivedAt,
      ...(resume ? { reboots: resume.reboots } : {}),
    };
    this.setState(this.stopRequests > 0 ? 'stopping' : 'running');
    const run = engine.start(job, {
      onStepStart: async (index, total, name) => {
        current.starting += 1;
        try {
          await this.startStepHook(current, index, total, name);
        } finally {
          current.starting -= 1;
          await this.tryHandOver(current);
        }
      },
      // the engine logs each step's start and end with its fields
      onStepEnd: async (result, index) => {
        if (current.handover?.journaled) return;
        const cause = current.handover?.cause;
        const recorded = cause?.kind === 'restart-command' && cause.stepIndex === index - 1 ? cutStepResult(result, cause) : result;
        await this.journalStep(current, () => journal.recordStep(offer.jobId, index - 1, recorded));
        await this.tryHandOver(current);
      },
    }, resume ? { finished: resume.finished, startedAtMs: receivedAt } : undefined);
    current.run = run;
    if (this.stopRequests > 1 || this.drainExpired || this.deadLoop) run.stop('shutdown');
    if (this.degraded) run.halt(haltReason(this.degraded));
    await this.enqueueProgress(current, run, resume);

    const supervised = await this.superviseRun(current, run);
    if (supervised === null) {
      this.current = null;
      this.status.currentJob = null;
      log.info(`job ${offer.jobName} goes on in the next agent process (RESTARTING)`, { ...fields, jobStatus: 'RESTARTING' });
      return;
    }
    const versioned = resume?.restartedFrom ? withVersions(supervised, resume.restartedFrom, this.deps.version) : supervised;
    const detailed = resume?.details ? { ...versioned, status_details: { ...versioned.status_details, ...resume.details } } : versioned;
    const report = withFault(detailed, current.fault);
    // the run holds every step's output buffers: nothing may keep it once it ended
    current.run = null;
    if (run.rebootRequest !== null && report.status === 'IN_PROGRESS') {
      this.current = null;
      await this.rebootForJob(offer, run.rebootRequest, report, current.gone);
      return;
    }
    log.info(`job ${offer.jobName} ended ${report.status}: ${report.reason}`, { ...fields, jobStatus: report.status });
    this.current = null;
    this.status.currentJob = null;
    if (current.gone) log.warn(`job ${offer.jobName} was deleted on the server; its result is kept in history only`, fields);
    await this.finish({ offer, receivedAt, report, journaled: true, delivered: current.gone });
  }

  // Before a step starts: no step starts once the job is to be handed over (halt: the run ends when running ones do).
  private async startStepHook(current: Current, index: number, total: number, name: string): Promise<void> {
    const { journal } = this.deps;
    if (current.deciding) await current.deciding;
    if (current.handover) {
      current.run?.halt('the agent restarts; the job goes on in the next agent process');
      return;
    }
    if (this.status.currentJob) Object.assign(this.status.currentJob, { step: name, stepIndex: index, stepCount: total });
    this.setState(this.stopRequests > 0 ? 'stopping' : 'running');
    // a full card still takes a few appends (a file's last page has room), so ask before each step, not only at the first failed write
    await this.checkStateBeforeStep(name);
    // decided meanwhile: checked with no await before the record, so a step is either journaled as started or never starts
    if (current.handover) {
      current.run?.halt('the agent restarts; the job goes on in the next agent process');
      return;
    }
    await this.journalStep(current, () => journal.recordStepStart(current.offer.jobId, index - 1, total, name));
  }

  // A journal write for a running job: a local fault halts the job (degraded), a bug kills the poll loop.
  private async journalStep(current: Current, write: () => Promise<void>): Promise<void> {
    try {
      await write();
    } catch (error) {
      const fault = classifyLocalFault(error);
      if (fault === null) {
        this.die(new LoopDiedError('poll', error));
        current.run?.stop('shutdown');
        return;
      }
      this.enterDegraded(fault, `journaling job ${current.offer.jobName}`);
    }
  }

  // Queues a progress report; the state directory failing costs the report, not the job.
  private async enqueueProgress(current: Current, run: JobRunPort, resume?: Resume): Promise<void> {
    if (current.canceled || current.gone || current.handover || this.degraded) return;
    try {
      const snapshot = run.snapshot();
      if (this.status.currentJob) this.status.currentJob.limits = snapshot.status_details.limits;
      await this.enqueue(current.offer.jobId, resume === undefined ? snapshot : markResumed(snapshot, resume));
    } catch (error) {
      this.enterDegraded(this.asLocalFault(error), `queueing a progress report of job ${current.offer.jobName}`);
    }
  }

  // An offer whose id cannot name its status URL: nothing runs and nothing is
  // queued (it could never be delivered and would hold up every report behind
  // it); the history keeps it as REJECTED for `cloudjobs history`.
  private async refuseOffer(refused: RefusedOffer): Promise<void> {
    const { log, history, engine, clock } = this.deps;
    const fields = { jobId: refused.jobId, jobName: refused.jobName, jobStatus: 'REJECTED' };
    log.error(`refused job ${refused.jobName}: ${refused.reason}; nothing runs and nothing can be reported for it`, fields);
    const report = engine.rejectedReport([refused.reason]);
    await history.add(finished(refused, clock.now(), clock.now(), report));
    this.writeStatus();
  }

  // Waits for a run to end while sending progress and enforcing the drain deadline;
  // null when the job was handed to the next agent process instead.
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
          this.setState('stopping');
        }
      }
    };
    const ticking = this.watch('progress', ticker.signal, tick());
    const handedOver = new Promise<'handed-over'>((resolve) => {
      current.handoverWaiter = () => resolve('handed-over');
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
      current.handoverWaiter = null;
      ticker.abort();
      await ticking;
    }
  }

  // ---- restarts the job caused ---------------------------------------------

  // SIGTERM while a job runs: if root restarts the agent (stop-cause.ts), hand the job over instead of draining.
  private async checkStopCause(current: Current): Promise<void> {
    const { log } = this.deps;
    const fields = { jobId: current.offer.jobId, jobName: current.offer.jobName };
    const entry = this.deps.journal.get(current.offer.jobId);
    let cause: StopCause;
    try {
      cause = await (this.deps.stopCause as NonNullable<AgentDeps['stopCause']>)(entry ? plannedRuns(current.job, entry) : []);
    } catch (error) {
      log.warn(`could not tell whether root restarts the agent (${describeError(error)}); job ${current.offer.jobName} drains`, fields);
      return;
    }
    if (cause.kind === 'outside') log.info(`job ${current.offer.jobName} drains: ${cause.evidence}`, fields);
    if (cause.kind === 'outside' || this.current !== current || current.run === null || this.stopRequests > 1 || this.drainExpired) return;
    current.handover = { cause, journaled: false };
    if (cause.kind === 'restart-command') {
      log.info(`job ${current.offer.jobName} restarts the agent (${cause.command}; ${cause.evidence}): the step is cut and the job goes on in the next agent process`, fields);
      current.run.stop('shutdown');
    } else {
      log.info(`the agent restarts (${cause.evidence}): job ${current.offer.jobName} starts no further step and goes on in the next agent process once its running steps end`, fields);
    }
    await this.tryHandOver(current);
  }

  // Journals the job RESTARTING once none of its steps runs or starts (handover.ts), and lets runJob return.
  private async tryHandOver(current: Current): Promise<void> {
    const handover = current.handover;
    if (handover === null || handover.journaled) return;
    const { journal, clock, log } = this.deps;
    const { offer } = current;
    const entry = journal.get(offer.jobId);
    if (!entry) return;
    const blocker = handOverBlocker(entry, current.starting);
    if (blocker !== null) {
      if ('never' in blocker) {
        log.info(`job ${offer.jobName} is not handed over (${blocker.never}): it ends in this agent process`, { jobId: offer.jobId });
        current.handover = null;
      }
      return;
    }
    handover.journaled = true;
    try {
      const last = entry.steps[entry.steps.length - 1];
      await journal.recordReboot(offer.jobId, {
        kind: 'restart',
        agentVersion: this.deps.version,
        requestedAt: new Date(clock.now()).toISOString(),
        bootId: null,
        marker: 'restart',
        resumeAt: entry.steps.length,
        stepLabel: last ? `step ${last.index + 1} ("${last.result.name.slice(0, 200)}")` : 'the job',
      });
    } catch (error) {
      log.error(`could not journal job ${offer.jobName} as RESTARTING (${describeError(error)}); it is reported interrupted at the next start`, {
        jobId: offer.jobId,
      });
    }
    current.handoverWaiter?.();
  }

  // Records a job's final report: in memory first, then journal, outbox and
  // history. What the disk cannot take stays held (sent directly, stored on recovery).
  private async finish(held: HeldFinal): Promise<void> {
    this.held.set(held.offer.jobId, held);
    await this.storeHeld(held);
    this.writeStatus();
  }

  private async storeHeld(held: HeldFinal): Promise<void> {
    const { journal, history, outbox } = this.deps;
    const { offer, receivedAt, report } = held;
    const jobId = offer.jobId;
    try {
      if (held.journaled && journal.get(jobId)?.final === null) await journal.recordFinal(jobId, report);
      if (!held.delivered && !history.has(jobId) && !outbox.hasPendingFinal(jobId)) await this.enqueue(jobId, report);
      // from here the outbox delivers it: a retry after a later failure must not queue it twice
      held.delivered = true;
      if (!history.has(jobId)) await this.addToHistory(offer, receivedAt, report);
      if (held.journaled) await journal.remove(jobId);
      this.held.delete(jobId);
    } catch (error) {
      const fault = this.asLocalFault(error);
      this.enterDegraded(fault, `storing the ${report.status} report of job ${offer.jobName}`);
      this.deps.log.warn(
        `the ${report.status} report of job ${offer.jobName} is held in memory${held.delivered ? '' : ' and sent directly'} until ${fault.path} can be written`,
        { jobId: offer.jobId, jobStatus: report.status },
      );
    }
  }

  // Sends held finals the outbox could not take, oldest first, once no earlier report of the job waits.
  private async sendHeldFinals(signal: AbortSignal, budgetMs: number): Promise<void> {
    const { cloud, log, clock } = this.deps;
    const deadline = clock.monotonic() + budgetMs;
    for (const held of this.held.values()) {
      if (held.delivered || signal.aborted || clock.monotonic() > deadline) continue;
      if (this.deps.outbox.entries().some((e) => e.jobId === held.offer.jobId && e.seq !== this.ackPending)) continue;
      const fields = { jobId: held.offer.jobId, jobStatus: held.report.status };
      try {
        const outcome = await cloud.sendStatus(held.offer.jobId, held.report, signal);
        held.delivered = true;
        log.info(`final report ${held.report.status} sent directly (the state directory could not queue it): ${outcome}`, { ...fields, cloudStatus: outcome });
      } catch (error) {
        if (signal.aborted) return;
        log.warn(`sending the held ${held.report.status} report directly failed: ${asCloudFailure(error).message}; trying again in ${formatDelay(this.deps.pollIntervalMs)}`, fields);
      }
    }
  }

  private reportHeldAtStop(): void {
    for (const held of this.held.values()) {
      const where = held.journaled ? 'its journal entry reports it interrupted at the next start' : 'nothing on disk remembers it';
      this.deps.log.error(
        `stopping with the ${held.report.status} report of job ${held.offer.jobName} ${held.delivered ? 'delivered but not in history' : 'neither stored nor delivered'}: ${where}`,
        { jobId: held.offer.jobId, jobStatus: held.report.status },
      );
    }
  }

  // Hands a final report to the outbox and history, then forgets the journal entry.
  private async settle(offer: JobOffer, receivedAt: number, report: StatusReport): Promise<void> {
    const { history, journal, outbox } = this.deps;
    if (!history.has(offer.jobId)) {
      if (!outbox.hasPendingFinal(offer.jobId)) await this.enqueue(offer.jobId, report);
      await this.addToHistory(offer, receivedAt, report);
    }
    await journal.remove(offer.jobId);
    this.writeStatus();
  }

  // A finished job enters history once: that is also when it is counted (AgentObserver).
  private async addToHistory(offer: JobOffer, receivedAt: number, report: StatusReport): Promise<void> {
    const now = this.deps.clock.now();
    await this.deps.history.add(finished(offer, receivedAt, now, report));
    this.deps.observer?.jobFinished(report.status, Math.max(0, now - receivedAt));
  }

  private async enqueue(jobId: string, report: StatusReport): Promise<void> {
    await this.deps.outbox.enqueue(jobId, report);
  }

  // ---- reboots ----------------------------------------------------------

  // A step asked for a reboot: journal REBOOTING, say so to the cloud, reboot, wait.
  private async rebootForJob(offer: JobOffer, request: RebootRequest, rebooting: StatusReport, gone: boolean): Promise<void> {
    const { journal, reboot, log, clock } = this.deps;
    const fields = { jobId: offer.jobId, jobName: offer.jobName };
    const entry = this.journalEntry(offer.jobId);
    if (gone) {
      await this.finishJournaled(entry, 'FAILED', `${request.label} asked for a reboot, but the cloud no longer knows this job; not rebooting`);
      return;
    }
    const asker = entry.steps.find((s) => s.index === request.stepsDone - 1)?.result.user ?? '(unknown)';
    const refused = decideRebootUser(asker, reboot.rebootUsers, request.label);
    if (refused !== null) {
      await this.finishJournaled(entry, 'FAILED', refused.reason);
      return;
    }
    const decision = decideRebootRequest(entry.reboots, reboot.maxReboots, request.label);
    if (decision.kind === 'fail') {
      await this.finishJournaled(entry, 'FAILED', decision.reason);
      return;
    }
    let boot: BootIdentity;
    try {
      boot = await reboot.currentBoot();
    } catch (error) {
      await this.finishJournaled(entry, 'FAILED', `reboot did not happen: the agent could not read the boot identity (${describeError(error)})`);
      return;
    }
    await journal.recordReboot(offer.jobId, {
      requestedAt: new Date(clock.now()).toISOString(),
      bootId: boot.bootId,
      marker: boot.marker,
      resumeAt: request.stepsDone,
      stepLabel: request.label,
    });
    log.info(`rebooting for job ${offer.jobName}: ${request.label} asked for reboot ${decision.count} of at most ${reboot.maxReboots}`, {
      ...fields,
      jobStatus: 'REBOOTING',
    });
    this.showRebooting(offer, decision.count);
    await this.enqueue(offer.jobId, rebooting);
    await this.waitForOutbox(REBOOT_REPORT_WAIT_MS);
    if (this.stopRequests > 0) {
      log.warn(`not rebooting for job ${offer.jobName}: the agent is stopping; the job stays REBOOTING and is decided at the next start`, fields);
      return;
    }
    try {
      await reboot.requestReboot();
    } catch (error) {
      await this.finishJournaled(this.journalEntry(offer.jobId), 'FAILED', `reboot did not happen: ${describeError(error)}`);
      return;
    }
    log.info(`asked the system to reboot (${reboot.commandText}); waiting up to ${formatDelay(reboot.rebootTimeoutMs)} for it`, fields);
    await this.awaitReboot(this.journalEntry(offer.jobId));
  }

  // Decides a REBOOTING job: resume it in a new boot, wait in the same one, or end it.
  private async awaitReboot(entry: JournalEntry): Promise<void> {
    const { reboot, clock, engine } = this.deps;
    const pending = entry.rebooting;
    if (pending === null) return;
    const timeoutMs = await engine.timeoutOf(entry.offer);
    if (pending.kind === 'restart') {
      // stopping already: the job stays RESTARTING for the next start
      if (this.pollStop.signal.aborted) return;
      const decision = decideAfterRestart({ now: clock.now(), receivedAt: Date.parse(entry.receivedAt), jobTimeoutMs: timeoutMs });
      if (decision.kind === 'timed-out') {
        await this.finishJournaled(entry, 'TIMED_OUT', decision.reason);
        return;
      }
      const update = await this.awaitSelfUpdate(entry, decision.remainingMs);
      if (update === 'stopping') return;
      const details = update ? { package_version_from: update.from, package_version_to: update.to } : {};
      if (update && update.status !== 'succeeded') {
        const reason = update.status === 'pending' ? `self-update ${update.from} -> ${update.to} was not decided within the job's time limit` : update.reason;
        await this.finishJournaled(entry, 'FAILED', reason, details);
        await this.forgetSelfUpdate(entry.offer.jobId);
        return;
      }
      await this.resumeJob(entry, pending, details);
      return;
    }
    this.showRebooting(entry.offer, entry.reboots);
    for (;;) {
      // stopping (the reboot stops the agent first): the job stays REBOOTING for the next start
      if (this.pollStop.signal.aborted) return;
      let boot: BootIdentity;
      try {
        boot = await reboot.currentBoot();
      } catch (error) {
        await this.finishJournaled(entry, 'FAILED', `could not tell whether the device rebooted: ${describeError(error)}`);
        return;
      }
      const decision = decideAfterReboot({
        pending: { requestedAt: Date.parse(pending.requestedAt), boot: { bootId: pending.bootId, marker: pending.marker } },
        currentBoot: boot,
        now: clock.now(),
        rebootTimeoutMs: reboot.rebootTimeoutMs,
        receivedAt: Date.parse(entry.receivedAt),
        jobTimeoutMs: timeoutMs,
      });
      switch (decision.kind) {
        case 'resume':
          await this.resumeJob(entry, pending);
          return;
        case 'fail':
          await this.finishJournaled(entry, 'FAILED', decision.reason);
          return;
        case 'timed-out':
          await this.finishJournaled(entry, 'TIMED_OUT', decision.reason);
          return;
        case 'wait':
          try {
            await clock.sleep(decision.waitMs, this.pollStop.signal);
          } catch {
            // stopping (the reboot itself stops the agent): the job stays REBOOTING
            return;
          }
      }
    }
  }

  // A job the agent restarted for may have run the self-update handler: its
  // watcher decides (new agent up, or rolled back) while this agent waits here.
  // null: no self-update; 'stopping': the agent stops meanwhile (the job stays RESTARTING).
  private async awaitSelfUpdate(entry: JournalEntry, remainingMs: number): Promise<SelfUpdateOutcome | null | 'stopping'> {
    const { selfUpdate, clock, log } = this.deps;
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
        this.status.currentJob = { jobId: offer.jobId, jobName: offer.jobName, step: 'self-update check', stepIndex: entry.steps.length, stepCount: 0, startedAt: clock.now() };
        this.setState('running');
      }
      try {
        await clock.sleep(500, this.pollStop.signal);
      } catch {
        return 'stopping';
      }
    }
  }

  private async forgetSelfUpdate(jobId: string): Promise<void> {
    try {
      await this.deps.selfUpdate?.remove(jobId);
    } catch (error) {
      this.deps.log.warn(`could not remove the self-update outcome of job ${jobId}: ${describeError(error)}`, { jobId });
    }
  }

  // The device rebooted: mark the job running again on disk, then run the steps after the one that asked.
  private async resumeJob(entry: JournalEntry, pending: RebootingRecord, details: Record<string, unknown> = {}): Promise<void> {
    const { journal, engine, log } = this.deps;
    const { offer } = entry;
    const finishedSteps = entry.steps.map((s) => s.result);
    const after = pending.kind === 'restart' ? 'the agent restart' : 'the reboot';
    if (entry.steps.some((s, i) => s.index !== i) || finishedSteps.length !== pending.resumeAt) {
      await this.finishJournaled(entry, 'FAILED', `could not resume after ${after}: the journal does not hold every step before it`);
      return;
    }
    let job: NormalizedJob;
    try {
      job = await engine.validate(offer, { resumed: true });
    } catch (error) {
      const problems = (error as { problems?: readonly string[] }).problems ?? [describeError(error)];
      await this.finishJournaled(entry, 'FAILED', `could not resume after ${after}: the job document no longer validates: ${problems.join('; ')}`);
      return;
    }
    await journal.recordResumed(offer.jobId);
    await this.forgetSelfUpdate(offer.jobId);
    const restartedFrom = pending.kind === 'restart' ? pending.agentVersion ?? 'unknown' : undefined;
    const what = restartedFrom === undefined ? `reboot ${entry.reboots}` : `the agent restart (agent ${restartedFrom} -> ${this.deps.version})`;
    log.info(`resumed job ${offer.jobName} after ${what}: going on after ${pending.stepLabel}`, {
      jobId: offer.jobId,
      jobName: offer.jobName,
    });
    await this.runJob(offer, job, Date.parse(entry.receivedAt), { finished: finishedSteps, reboots: entry.reboots, restartedFrom, details });
  }

  // Ends a job that asked for a reboot without running it on: the report is made from the journal.
  private async finishJournaled(entry: JournalEntry, status: 'FAILED' | 'TIMED_OUT', reason: string, details: Record<string, unknown> = {}): Promise<void> {
    const { engine, journal, log } = this.deps;
    const { offer } = entry;
    const made = engine.journaledReport(entry, status, reason);
    const report = { ...made, status_details: { ...made.status_details, ...details } };
    log.warn(`job ${offer.jobName} ended ${status}: ${reason}`, { jobId: offer.jobId, jobName: offer.jobName, jobStatus: status });
    this.status.currentJob = null;
    await this.finish({ offer, receivedAt: Date.parse(entry.receivedAt), report, journaled: true, delivered: false });
  }

  private showRebooting(offer: JobOffer, reboots: number): void {
    this.status.currentJob = { jobId: offer.jobId, jobName: offer.jobName, step: null, stepIndex: 0, stepCount: 0, startedAt: this.deps.clock.now(), reboots };
    this.setState('rebooting');
  }

  private journalEntry(jobId: string): JournalEntry {
    const entry = this.deps.journal.get(jobId);
    if (!entry) throw new Error(`internal: job ${jobId} is not in the journal`);
    return entry;
  }

  // Gives queued reports up to `ms` to reach the cloud (best effort: they stay queued either way).
  private async waitForOutbox(ms: number): Promise<void> {
    const { clock, outbox } = this.deps;
    const deadline = clock.monotonic() + ms;
    while (outbox.stats().count > 0 && clock.monotonic() < deadline) {
      try {
        await clock.sleep(50, this.pollStop.signal);
      } catch {
        return;
      }
    }
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
    const entry = await this.untilStored('reading the outbox', () => outbox.next(), signal);
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
      if (this.onTooLarge(entry, state.cutter.onTooLarge(body))) {
        await this.untilStored('removing a given-up report from the outbox', () => outbox.ack(entry.seq), signal);
      }
      this.writeStatus();
      return 'next';
    }
    if (state.lastProblem !== null) log.info('reports are delivered again', fields);
    state.lastProblem = null;
    deliveryRetry.reset();
    // delivered: if the removal fails (read-only disk) retry only the removal, never the send
    this.ackPending = entry.seq;
    await this.untilStored('removing a delivered report from the outbox', () => outbox.ack(entry.seq), signal);
    this.ackPending = null;
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
    const deadline = clock.monotonic() + this.deps.flushTimeoutMs;
    while (outbox.stats().count > 0 && clock.monotonic() < deadline) {
      try {
        await clock.sleep(50);
      } catch {
        break;
      }
    }
    const left = outbox.stats().count;
    if (left > 0) log.info(`stopping with ${left} report${left === 1 ? '' : 's'} still queued; they are sent at the next start`);
  }

  // ---- faults ----------------------------------------------------------

  // Names a local fault, or rethrows: what is neither the cloud's nor the disk's is a bug.
  private asLocalFault(error: unknown): LocalFault {
    const fault = classifyLocalFault(error);
    if (fault === null) throw error;
    return fault;
  }

  private enterDegraded(fault: LocalFault, during: string): void {
    const changed = this.degraded?.message !== fault.message;
    this.degraded = fault;
    this.status.degraded = fault.message;
    if (changed) {
      this.deps.log.error(
        `degraded: ${fault.message} (while ${during}); taking no new job and delivering what can be delivered; checking again every ${formatDelay(this.deps.pollIntervalMs)}`,
        { path: fault.path, errno: fault.errno ?? 'none' },
      );
    }
    const current = this.current;
    if (current?.run) {
      current.fault ??= fault.message;
      current.run.halt(haltReason(fault));
    }
    this.setState(this.current ? 'running' : 'degraded');
  }

  private leaveDegraded(): void {
    const was = this.degraded;
    if (was === null) return;
    this.degraded = null;
    this.status.degraded = null;
    this.deps.log.info(`state directory writable again (was: ${was.message}); back to normal`, { path: was.path });
    if (this.status.state === 'degraded') this.setState(this.deps.disabledReason ? 'disabled' : 'idle');
    const waiters = this.recoveryWaiters;
    this.recoveryWaiters = [];
    for (const wake of waiters) wake();
  }

  // Before a poll: whether state_dir can take a new job's journal entry. While
  // degraded, probes it (a real write) and on success stores what was held.
  private async isStateUnusable(signal: AbortSignal): Promise<boolean> {
    if (this.degraded === null) {
      const fault = (await this.deps.checkState?.()) ?? null;
      if (fault !== null) this.enterDegraded(fault, 'checking the state directory before a poll');
      return fault !== null;
    }
    await this.recheckState();
    if (this.degraded === null && !signal.aborted) {
      if (this.recoveryPending) await this.recoverOrDegrade();
      for (const held of [...this.held.values()]) await this.storeHeld(held);
    }
    return this.degraded !== null;
  }

  // Before a step: a state_dir that cannot take the job's records halts the job (enterDegraded), so that step does not start.
  private async checkStateBeforeStep(step: string): Promise<void> {
    if (this.degraded !== null) return;
    const fault = (await this.deps.checkState?.()) ?? null;
    if (fault !== null) this.enterDegraded(fault, `checking the state directory before step ${step}`);
  }

  private async recheckState(): Promise<void> {
    const fault = (await this.deps.probeState?.()) ?? null;
    if (fault === null) this.leaveDegraded();
    else this.enterDegraded(fault, 'checking the state directory');
  }

  // Runs a state operation of the delivery loop; on a local fault waits for
  // recovery (probing itself every poll interval) and tries again.
  private async untilStored<T>(what: string, operation: () => Promise<T>, signal: AbortSignal): Promise<T> {
    for (;;) {
      try {
        return await operation();
      } catch (error) {
        if (signal.aborted) throw new AbortedError();
        this.enterDegraded(this.asLocalFault(error), what);
        while (this.degraded !== null) {
          await this.deps.clock.sleep(this.deps.pollIntervalMs, signal);
          // the poll loop probes too; when it does not run (jobs disabled, stopping), this does
          if (this.degraded !== null && !this.status.polling) await this.recheckState();
        }
      }
    }
  }

  // Watches a long-lived loop: rejecting (or ending before its signal) is a death.
  private watch(name: LoopName, signal: AbortSignal, loop: Promise<void>): Promise<void> {
    const injected = this.deps.injectLoopDeath?.(name) ?? null;
    const watched = injected === null ? loop : Promise.race([loop, injected]);
    return watched.then(
      () => {
        if (!signal.aborted) this.die(new LoopDiedError(name, new Error('it ended while the agent was running')));
      },
      (error: unknown) => {
        if (signal.aborted && error instanceof AbortedError) return;
        this.die(new LoopDiedError(name, error));
      },
    );
  }

  // A loop died: stop everything so run() can reject; the health check fails from now on.
  private die(error: LoopDiedError): void {
    if (this.deadLoop) return;
    this.deadLoop = error;
    const cause = error.cause instanceof Error ? (error.cause.stack ?? error.cause.message) : String(error.cause);
    this.deps.log.error(`${error.message}; the agent exits with status ${EXIT_LOOP_DIED} so systemd restarts it (${cause})`, {
      loop: error.loop,
    });
    this.deps.notifier.status(this.describe());
    this.current?.run?.stop('shutdown');
    this.pollStop.abort();
    this.deliveryStop.abort();
  }

  // While stopping: systemd waits for the drain deadline plus the allowance, whatever TimeoutStopSec says.
  private extendStopTimeout(): void {
    const now = this.deps.clock.monotonic();
    if (this.lastExtendAt !== null && now >= this.lastExtendAt && now - this.lastExtendAt < EXTEND_MIN_GAP_MS) return;
    this.lastExtendAt = now;
    const left = this.drainDeadline === null ? 0 : Math.max(0, this.drainDeadline - this.deps.clock.monotonic());
    this.deps.notifier.extendTimeout?.(left + (this.deps.stopAllowanceMs ?? DEFAULT_STOP_ALLOWANCE_MS));
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
    const key = `${s.state}|${s.degraded}|${this.statusFault}|${this.deps.pushStatus?.().state ?? ''}|${s.generation}|${s.lastPoll?.outcome ?? ''}|${this.deps.outbox.stats().count}|${r.refused}|${r.retried}|${r.cut}|${s.disabledReason}|${this.deps.jobGate?.status().reason ?? ''}|${
      job ? JSON.stringify(job) : ''
    }`;
    const now = this.deps.clock.monotonic();
    if (key === this.statusKey && now - this.statusWrittenAt < STATUS_REFRESH_MS) return;
    this.statusKey = key;
    this.statusWrittenAt = now;
    this.statusDirty = true;
    if (this.statusWriter || this.statusClosed) return;
    const closed = new AbortController();
    const writing = (async () => {
      while (this.statusDirty && !this.statusClosed) {
        this.statusDirty = false;
        this.status.updatedAt = this.deps.clock.now();
        await this.writeStatusOnce();
      }
      closed.abort();
    })();
    this.statusWriter = this.watch('status writer', closed.signal, writing).finally(() => {
      this.statusWriter = null;
    });
  }

  // A runtime_dir fault is named (journal once, STATUS=) and survived; anything else kills the writer.
  private async writeStatusOnce(): Promise<void> {
    try {
      await this.deps.writeStatus(this.getStatus());
      if (this.statusFault !== null) this.deps.log.info('the status file is written again');
      this.statusFault = null;
    } catch (error) {
      const fault = this.asLocalFault(error);
      if (fault.message !== this.statusFault) this.deps.log.error(`could not write the status file: ${fault.message}`, { path: fault.path });
      this.statusFault = fault.message;
      this.deps.notifier.status(this.describe());
    }
  }
}

// The least wait before the next poll after an offer that ran nothing (a server handing out the same finished job forever).
const NOTHING_RAN_GAP_MS = 200;

// EXTEND_TIMEOUT_USEC is sent at most this often (each one is a datagram to systemd and a journal line at debug).
const EXTEND_MIN_GAP_MS = 1000;

// EXTEND_TIMEOUT_USEC margin when AgentDeps.stopAllowanceMs is not given.
const DEFAULT_STOP_ALLOWANCE_MS = 60_000;

function haltReason(fault: LocalFault): string {
  return `the agent cannot write its state (${fault.message}), so it started no further step`;
}

// The final report of a job during which the state directory failed says so.
function withFault(report: StatusReport, fault: string | null): StatusReport {
  if (fault === null) return report;
  const reason = report.reason.includes(fault) ? report.reason : `${report.reason}; meanwhile the agent could not write its state (${fault})`;
  return { ...report, reason, status_details: { ...report.status_details, local_fault: fault } };
}

/** One poll of the cloud: how long to wait after it, and the offer (taken or refused) it brought, if any. */
interface PollOutcome {
  delay: number;
  state: 'idle' | 'backoff';
  offer: JobOffer | null;
  refused: RefusedOffer | null;
}

/** What ran before a reboot or an agent restart, for the run after it. */
interface Resume {
  finished: readonly StepResult[];
  reboots: number;
  /** Set after an agent restart: the version of the agent that ran the steps before. */
  restartedFrom?: string;
  /** Added to the reports' status_details (a self-update's package versions). */
  details?: Record<string, unknown>;
}

/** A step's reboot request as the engine names it. */
type RebootRequest = NonNullable<JobRunPort['rebootRequest']>;

// The first report after a reboot or an agent restart says the job goes on.
function markResumed(report: StatusReport, resume: Resume): StatusReport {
  if (resume.restartedFrom !== undefined) {
    return withVersions({ ...report, reason: `resumed after the agent restarted; ${report.reason}` }, resume.restartedFrom, null);
  }
  return {
    ...report,
    reason: `resumed after reboot; ${report.reason}`,
    status_details: { ...report.status_details, resumed_after_reboot: true, reboots: resume.reboots },
  };
}

// A report of a job that restarted the agent names both versions (an update says from and to).
function withVersions(report: StatusReport, from: string, to: string | null): StatusReport {
  return {
    ...report,
    status_details: {
      ...report.status_details,
      resumed_after_restart: true,
      agent_version_from: from,
      ...(to === null ? {} : { agent_version_to: to }),
    },
  };
}

function finished(offer: Pick<JobOffer, 'jobId' | 'jobName'>, receivedAt: number, finishedAt: number, report: StatusReport) {
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
