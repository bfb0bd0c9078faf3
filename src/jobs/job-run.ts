// One run of a validated job: its steps in order (parallel groups concurrently,
// at most maxParallel at once), the finalStep when everything succeeded,
// bounded by the job's time limit, stoppable by cancel or shutdown; then the
// report. The rules that turn results into a status (outcome.ts) and the
// progress report (snapshot.ts) are pure functions; this class only runs.
//
// INVARIANTS
// - done never rejects; whatever happens it resolves to a final StatusReport.
// - A step starts only after the previous step's onStepEnd hook settled (the
//   journal has it on disk), and only while the job is neither stopped nor failed.
// - When done resolves, no process of the job is left: each step's group went
//   with its leader, and a last sweep kills everything in the job's slice
//   (limits enforced: job-unit.ts), else anything still carrying
//   CLOUDJOBS_JOB_ID=<jobId> (daemons that called setsid). Job dirs are removed.
// - With limits enforced, the first OOM kill or refused fork the kernel counts
//   in the job's slice stops the whole job (FAILED, the limit named), read
//   from the cgroup's counters after each step and every limitPollMs.
// - A step that starts once the agent is stopping (hooks.agentStopping) runs
//   in the agent's cgroup, outside the slice (job-unit.ts); the job says so
//   once in the log and in status_details.limits; what it leaves behind is in
//   the agent's stopping cgroup, which the unit's KillMode=mixed ends.
// - Steps are numbered by their place in the plan (job-plan.ts), so a run that
//   starts with earlier results (JobStart.finished) numbers, labels and reports
//   exactly as the run that made them.
// - A step of its own (not a parallel member) that asks for a reboot (exit
//   REBOOT_EXIT_CODE) ends the run before the next step: `done` is then an
//   IN_PROGRESS report saying so and `rebootRequest` names the step. The agent
//   reboots and starts a new run with every result so far (JobStart.finished).
import type { Clock } from '../clock/clock.js';
import type { StatusReport } from '../contract/types.js';
import { describeError } from '../errors/errors.js';
import type { Log } from '../log/log.js';
import { planSteps, type PlannedStep, type PlanNode } from './job-plan.js';
import { JobResources } from './job-resources.js';
import type { CgroupCounters } from './cgroup.js';
import { openJobUnit, type JobUnit, type LimitSupport } from './job-unit.js';
import { createCgroupTarget, createJobTarget, runKillLadder } from './kill-ladder.js';
import { applyLimitRequest, describeLimits, describeOutOfMemory, describeTasksMax, type EffectiveLimits, type JobLimits } from './limits.js';
import type { AgentPrivileges } from './launch.js';
import { decideOutcome, findDecisive, type FinishedStep, type JobStop, type Verdict } from './outcome.js';
import { composeReport } from './report.js';
import { startStep, type StepRun, type StepUnit } from './run-step.js';
import { composeRebootingReport, composeSnapshot } from './snapshot.js';
import { REBOOT_EXIT_CODE, type NormalizedJob, type StepResult } from './types.js';
import type { UserInfo } from './users.js';
import { prepareWorkRoot } from './work-dir.js';

/** What the engine needs from the agent (values from [jobs], plus clock and log). */
export interface EngineOptions {
  workDir: string;
  killGraceMs: number;
  /** Bytes kept per stream of a step. */
  maxOutput: number;
  maxParallel: number;
  /** PATH given to steps and used to find their commands. */
  path: string;
  agentVersion: string;
  clock: Clock;
  log: Log;
  lookupUser: (name: string) => Promise<UserInfo | null>;
  /** The uid the agent runs as; defaults to process.getuid(). Only root can run steps as other users. */
  agentUid?: number;
  /** What the agent holds (launch.ts); read from /proc/self/status with the first step when absent. */
  agentPrivileges?: AgentPrivileges;
  /** Frees the buffers of output already consumed; called every few MiB a step writes (see run-step.ts). */
  reclaimMemory?: () => void;
  /** The device's ceiling ([jobs] memory_max, tasks_max, cpu_quota); a job without limits of its own runs with it. */
  limitCeiling?: JobLimits;
  /** Whether limits can be enforced (job-unit.ts); absent or not enforced, steps are spawned directly. */
  limitSupport?: LimitSupport;
  /** How often the job's cgroup counters are read while it runs. @default 1000 */
  limitPollMs?: number;
}

const NO_LIMITS: JobLimits = { memoryMax: null, tasksMax: null, cpuQuota: null };
const LIMIT_POLL_MS = 1000;

/** Called around each step; returned promises are awaited before the job goes on. */
export interface JobHooks {
  /** `index` is 1-based over all steps (parallel members and finalStep included). */
  onStepStart?(index: number, total: number, name: string): void | Promise<void>;
  onStepEnd?(result: StepResult, index: number, total: number): void | Promise<void>;
  /** Asked as each step starts (limits enforced): true once the agent is stopping, so the step cannot get a scope. */
  agentStopping?(): boolean;
}

/** Where a run begins: from scratch (the default), or after steps that already ran. */
export interface JobStart {
  /** Results of plan steps 1..n, in that order; those steps are not run again. */
  finished?: readonly StepResult[];
  /** When the job started, in clock ms: its time limit and duration count from here. @default now */
  startedAtMs?: number;
}

/** A step that asked for a reboot: the run ended after it. */
export interface RebootRequest {
  /** 'step 2 ("Reboot")' */
  label: string;
  /** Steps that ended, this one included: the next run starts after them. */
  stepsDone: number;
}

interface Running {
  run: StepRun;
  step: PlannedStep;
  startedAtMs: number;
}

/** A job being run: `done` is the final report; snapshot() and stop() act on it meanwhile. */
export class JobRun {
  /** The final report; never rejects. */
  readonly done: Promise<StatusReport>;
  private readonly job: NormalizedJob;
  private readonly options: EngineOptions;
  private readonly hooks: JobHooks;
  private readonly log: Log;
  private readonly plan: PlanNode[];
  private readonly total: number;
  private readonly startedAtMs: number;
  /** monotonic() when the job started; a resumed job's time before this process is counted by the wall clock. */
  private readonly startedMono: number;
  private readonly resources: JobResources;
  private readonly agentUid: number;
  private readonly timer = new AbortController();
  private readonly finished: FinishedStep[] = [];
  private readonly running = new Set<Running>();
  private stopKind: JobStop | null = null;
  private haltReason: string | null = null;
  private finalReport: StatusReport | null = null;
  private rebootStep: FinishedStep | null = null;
  private readonly limits: EffectiveLimits;
  private unit: JobUnit | null = null;
  private limitReason: string | null = null;
  private lastCounters: CgroupCounters | null = null;
  /** Steps (1-based plan indexes) that ran outside the job's slice because the agent was stopping. */
  private readonly outsideSlice: number[] = [];

  constructor(job: NormalizedJob, options: EngineOptions, hooks: JobHooks = {}, start: JobStart = {}) {
    this.job = job;
    this.options = options;
    this.hooks = hooks;
    this.log = options.log.child({ jobId: job.jobId, jobName: job.jobName });
    this.plan = planSteps(job);
    const steps = this.plan.flatMap((node) => (node.kind === 'single' ? [node.step] : node.members));
    this.total = steps.length;
    this.startedAtMs = start.startedAtMs ?? options.clock.now();
    this.startedMono = options.clock.monotonic() - Math.max(0, options.clock.now() - this.startedAtMs);
    this.agentUid = options.agentUid ?? process.getuid?.() ?? 0;
    this.resources = new JobResources(job.jobId, { ...options, agentUid: this.agentUid });
    this.limits = job.limits ?? applyLimitRequest(options.limitCeiling ?? NO_LIMITS, NO_LIMITS);
    for (const [at, result] of (start.finished ?? []).entries()) {
      const step = steps[at];
      if (step === undefined) throw new RangeError(`${start.finished?.length} earlier results for a job of ${this.total} steps`);
      this.finished.push({ index: step.index, label: step.label, result });
    }
    this.done = this.run()
      .catch((error: unknown) => this.onEngineFailure(error))
      .then((final) => this.finish(final));
  }

  /** An IN_PROGRESS report: steps done and output so far, in the same full shape. */
  snapshot(): StatusReport {
    if (this.finalReport !== null) return this.finalReport;
    const { clock, agentVersion } = this.options;
    const snapshot = composeSnapshot({
      finished: this.finished.map((f) => f.result),
      active: [...this.running].map((r) => ({ spec: r.step.spec, label: r.step.label, startedAtMs: r.startedAtMs, output: r.run.partial() })),
      total: this.total,
      includeStdOut: this.job.includeStdOut,
      agentVersion,
      startedAtMs: this.startedAtMs,
      now: this.jobNow(),
    });
    return { ...snapshot, status_details: { ...snapshot.status_details, limits: this.describeLimitDetails() } };
  }

  /** The step that asked for a reboot, once the run ended for it; else null. */
  get rebootRequest(): RebootRequest | null {
    if (this.finalReport === null || this.rebootStep === null || this.finalReport.status !== 'IN_PROGRESS') return null;
    return { label: describeLabel(this.rebootStep.label, this.rebootStep.result.name), stepsDone: this.finished.length };
  }

  /** Stops the job through the kill ladder: cancel reports CANCELED, shutdown FAILED. */
  stop(kind: 'cancel' | 'shutdown'): void {
    this.stopAll(kind);
  }

  /**
   * Starts no further step; running steps finish. The job ends FAILED with
   * `reason` unless every step ran (the agent halts a job it can no longer journal).
   */
  halt(reason: string): void {
    if (this.haltReason !== null || this.finalReport !== null) return;
    this.haltReason = reason;
    this.log.warn(`starting no further step: ${reason}`, { jobId: this.job.jobId });
  }

  private stopAll(kind: JobStop): void {
    if (this.stopKind !== null || this.finalReport !== null) return;
    this.stopKind = kind;
    this.log.info(`stopping job: ${kind}`, { jobId: this.job.jobId });
    for (const entry of this.running) entry.run.stop(kind);
  }

  private mayContinue(): boolean {
    return this.stopKind === null && this.haltReason === null && this.rebootStep === null && findDecisive(this.finished) === null;
  }

  private async run(): Promise<StatusReport> {
    const { clock } = this.options;
    const left = Math.max(0, this.job.timeoutMs - this.elapsedMs());
    clock.sleep(left, this.timer.signal).then(
      () => this.stopAll('job-timeout'),
      () => undefined,
    );
    const problem = (await prepareWorkRoot(this.options.workDir, this.agentUid)) ?? (await this.openUnit());
    if (problem !== null) return this.report({ status: 'FAILED', reason: `no step ran: ${problem}`, decisive: null });
    this.watchLimits();
    await this.runSteps();
    // a shutdown after the request does not undo it: the agent journals the reboot and leaves it to the next start
    if (this.rebootStep !== null && (this.stopKind === null || this.stopKind === 'shutdown')) return this.rebootingReport(this.rebootStep);
    const { finished, total, stopKind: stop, haltReason: halted } = this;
    return this.report(decideOutcome({ finished, total, stop, halted, timeoutMs: this.job.timeoutMs, limitReason: this.limitReason }));
  }

  // The job's slice, when limits are enforced here; a problem when it cannot be made (no step runs unlimited).
  private async openUnit(): Promise<string | null> {
    const support = this.options.limitSupport;
    if (support === undefined || !support.enforced) return null;
    try {
      this.unit = await openJobUnit(this.job.jobId, this.limits, support);
      this.log.debug(`job runs in ${this.unit.slice}`, { jobId: this.job.jobId });
      return null;
    } catch (error) {
      return `could not apply the job's resource limits: ${describeError(error)}`;
    }
  }

  private watchLimits(): void {
    if (this.unit === null) return;
    const every = this.options.limitPollMs ?? LIMIT_POLL_MS;
    const loop = async (): Promise<void> => {
      while (!this.timer.signal.aborted && this.limitReason === null) {
        await this.options.clock.sleep(every, this.timer.signal);
        await this.checkLimits();
      }
    };
    loop().catch(() => undefined); // the sleep rejects when the job ends
  }

  // Reads the slice's counters; the first OOM kill or refused fork stops the job.
  private async checkLimits(): Promise<string | null> {
    if (this.unit === null || this.limitReason !== null) return this.limitReason;
    const counters = await this.unit.counters();
    this.lastCounters = counters;
    let reason: string | null = null;
    if ((counters.oomKills ?? 0) > 0) reason = describeOutOfMemory(this.limits);
    else if ((counters.pidsMaxHits ?? 0) > 0) reason = describeTasksMax(this.limits);
    if (reason !== null && this.limitReason === null && this.finalReport === null) {
      this.limitReason = reason;
      this.log.warn(`stopping job: ${reason}`, { jobId: this.job.jobId });
      this.stopAll('limit');
    }
    return this.limitReason;
  }

  private stepUnit(unit: JobUnit, step: PlannedStep): StepUnit {
    return {
      wrap: (launch) => {
        const placed = unit.wrap(launch, this.hooks.agentStopping?.() === true);
        if (placed.placement === 'agent-cgroup') this.noteOutsideSlice(unit, step);
        return placed.launch;
      },
      checkLimits: () => this.checkLimits(),
      limitReason: () => this.limitReason,
    };
  }

  // Said once per job: from this step on, the job's limits do not hold (the slice takes no new step).
  private noteOutsideSlice(unit: JobUnit, step: PlannedStep): void {
    this.outsideSlice.push(step.index);
    if (this.outsideSlice.length > 1) return;
    this.log.warn(
      `${step.label} and any later step of this job run outside the job's slice ${unit.slice}, so its limits (${describeLimits(this.limits)}) are not enforced on them: ` +
        "the agent is stopping, and systemd starts no new scope in the job's slice while it does; they still end by the agent's drain_timeout",
      { jobId: this.job.jobId, step: step.spec.name },
    );
  }

  /** The limits as status_details.limits shows them, with the peak memory and CPU time seen. */
  private describeLimitDetails(): Record<string, unknown> {
    const support = this.options.limitSupport;
    const { memoryMax, tasksMax, cpuQuota, sources } = this.limits;
    const fromDocument = (Object.keys(sources) as (keyof JobLimits)[]).filter((key) => sources[key] === 'document');
    const base = { memory_max: memoryMax, tasks_max: tasksMax, cpu_quota_percent: cpuQuota, from_document: fromDocument };
    if (support === undefined) return { enforced: false, why: 'no limits configured', ...base };
    if (!support.enforced) return { enforced: false, why: support.why, ...base };
    const counters = this.lastCounters;
    const usage = counters?.cpuUsageUsec ?? null;
    return {
      enforced: true,
      ...base,
      ...(support.gaps.length > 0 ? { not_enforced: support.gaps } : {}),
      unit: this.unit?.slice ?? null,
      ...(this.outsideSlice.length > 0 ? { steps_outside_slice: [...this.outsideSlice] } : {}),
      memory_peak: counters?.memoryPeak ?? null,
      cpu_usage_ms: usage === null ? null : Math.round(usage / 1000),
    };
  }

  private async runSteps(): Promise<void> {
    for (const node of this.plan) {
      if (!this.mayContinue()) return;
      if (node.kind === 'single') await this.runOne(node.step, false);
      else await this.runGroup(node.members);
    }
  }

  private async runGroup(members: readonly PlannedStep[]): Promise<void> {
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < members.length && this.mayContinue()) {
        const at = next;
        next += 1;
        await this.runOne(members[at] as PlannedStep, true);
      }
    };
    const width = Math.max(1, Math.min(this.options.maxParallel, members.length));
    await Promise.all(Array.from({ length: width }, worker));
  }

  private async runOne(step: PlannedStep, inGroup: boolean): Promise<void> {
    if (this.finished.some((f) => f.index === step.index)) return;
    const { index, label, spec } = step;
    const fields = { jobId: this.job.jobId, step: spec.name };
    await this.callHook('onStepStart', () => this.hooks.onStepStart?.(index, this.total, spec.name));
    // the hook may have halted the job (its start could not be journaled)
    if (this.haltReason !== null) return;
    this.log.info(`starting ${label}`, fields);
    const result = refuseGroupReboot(await this.executeStep(step), inGroup, spec.ignoreStepFailure);
    this.finished.push({ index, label, result });
    if (result.rebootRequested) {
      this.rebootStep = { index, label, result };
      this.log.info(`${label} asked for a reboot`, fields);
    }
    const verb = result.failed ? (result.ignored ? 'failed (ignored)' : 'failed') : 'succeeded';
    this.log.info(`${label} ${verb}`, { ...fields, exitCode: result.exitCode, reason: result.failureReason });
    await this.callHook('onStepEnd', () => this.hooks.onStepEnd?.(result, index, this.total));
  }

  private async executeStep(step: PlannedStep): Promise<StepResult> {
    const prepared = await this.resources.prepare(step.spec);
    if ('unstarted' in prepared) return prepared.unstarted;
    const { clock } = this.options;
    const entry: Running = {
      step,
      startedAtMs: this.jobNow(),
      run: startStep(step.spec, {
        jobId: this.job.jobId,
        jobName: this.job.jobName,
        ...prepared,
        path: this.options.path,
        maxOutput: this.options.maxOutput,
        reclaimMemory: this.options.reclaimMemory,
        killGraceMs: this.options.killGraceMs,
        jobTimeoutMs: this.job.timeoutMs,
        ...(this.unit === null ? {} : { unit: this.stepUnit(this.unit, step) }),
        clock,
        log: this.log,
      }),
    };
    this.running.add(entry);
    if (this.stopKind !== null) entry.run.stop(this.stopKind);
    try {
      return await entry.run.done;
    } finally {
      this.running.delete(entry);
    }
  }

  private async callHook(name: string, call: () => void | Promise<void>): Promise<void> {
    try {
      await call();
    } catch (error) {
      this.log.error(`${name} hook failed: ${describeError(error)}`, { jobId: this.job.jobId });
    }
  }

  private report(verdict: Verdict): StatusReport {
    return composeReport({
      ...verdict,
      results: this.finished.map((f) => f.result),
      includeStdOut: this.job.includeStdOut,
      agentVersion: this.options.agentVersion,
      durationMs: this.elapsedMs(),
      extraDetails: { limits: this.describeLimitDetails() },
    });
  }

  private rebootingReport(step: FinishedStep): StatusReport {
    const { clock, agentVersion } = this.options;
    return composeRebootingReport({
      finished: this.finished.map((f) => f.result),
      total: this.total,
      includeStdOut: this.job.includeStdOut,
      agentVersion,
      startedAtMs: this.startedAtMs,
      now: this.jobNow(),
      requestedBy: describeLabel(step.label, step.result.name),
    });
  }

  private onEngineFailure(error: unknown): StatusReport {
    this.log.error(`job engine failed: ${describeError(error)}`, { jobId: this.job.jobId });
    for (const entry of this.running) entry.run.stop('shutdown');
    return this.report({ status: 'FAILED', reason: `the agent failed while running the job: ${describeError(error)}`, decisive: null });
  }

  private async finish(final: StatusReport): Promise<StatusReport> {
    await this.cleanUp();
    const durationMs = this.elapsedMs();
    const limits = this.describeLimitDetails();
    this.finalReport = { ...final, status_details: { ...final.status_details, duration_ms: durationMs, limits } };
    return this.finalReport;
  }

  // Time since the job started, by the monotonic clock: a wall clock set by NTP during the job changes no duration.
  private elapsedMs(): number {
    return Math.max(0, this.options.clock.monotonic() - this.startedMono);
  }

  // The job's start plus elapsed time: the timeline of its snapshots' durations, never stepped by the wall clock.
  private jobNow(): number {
    return this.startedAtMs + this.elapsedMs();
  }

  private async cleanUp(): Promise<void> {
    this.timer.abort();
    const unit = this.unit;
    try {
      // the last counters (peak memory) before the sweep empties the slice
      if (unit !== null) this.lastCounters = await unit.counters();
      // what a step run outside the slice left is in the agent's stopping cgroup: KillMode=mixed ends it
      const target = unit === null ? createJobTarget(this.job.jobId, process.pid) : createCgroupTarget(unit.cgroupDir);
      const outcome = await runKillLadder(target, this.options.killGraceMs, this.options.clock);
      if (outcome !== 'gone') this.log.warn(`stopped processes the job left behind (${outcome})`, { jobId: this.job.jobId });
      await unit?.release();
    } catch (error) {
      this.log.error(`could not sweep the job's leftover processes: ${describeError(error)}`, { jobId: this.job.jobId });
    }
    await this.resources.removeDirs(this.log);
  }
}

// A parallel member runs beside others: there is no "next step" to reboot
// before, so its reboot request fails it instead.
function refuseGroupReboot(result: StepResult, inGroup: boolean, ignoreStepFailure: boolean): StepResult {
  if (!inGroup || !result.rebootRequested) return result;
  const { rebootRequested: _ignored, ...rest } = result;
  return {
    ...rest,
    failed: true,
    ignored: ignoreStepFailure,
    failureReason: `exited with code ${REBOOT_EXIT_CODE} (a reboot request) inside a parallel group; only a step of its own may ask for a reboot`,
  };
}

function describeLabel(label: string, name: string): string {
  return label === name ? label : `${label} (${JSON.stringify(name.length > 200 ? `${name.slice(0, 200)}…` : name)})`;
}
