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
//   with its leader, and a last sweep kills anything still carrying
//   CLOUDJOBS_JOB_ID=<jobId> (daemons that called setsid). Job dirs are removed.
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
import { createJobTarget, runKillLadder } from './kill-ladder.js';
import type { AgentPrivileges } from './launch.js';
import { decideOutcome, findDecisive, type FinishedStep, type JobStop, type Verdict } from './outcome.js';
import { composeReport } from './report.js';
import { startStep, type StepRun } from './run-step.js';
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
}

/** Called around each step; returned promises are awaited before the job goes on. */
export interface JobHooks {
  /** `index` is 1-based over all steps (parallel members and finalStep included). */
  onStepStart?(index: number, total: number, name: string): void | Promise<void>;
  onStepEnd?(result: StepResult, index: number, total: number): void | Promise<void>;
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
    return composeSnapshot({
      finished: this.finished.map((f) => f.result),
      active: [...this.running].map((r) => ({ spec: r.step.spec, label: r.step.label, startedAtMs: r.startedAtMs, output: r.run.partial() })),
      total: this.total,
      includeStdOut: this.job.includeStdOut,
      agentVersion,
      startedAtMs: this.startedAtMs,
      now: this.jobNow(),
    });
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
    const problem = await prepareWorkRoot(this.options.workDir, this.agentUid);
    if (problem !== null) return this.report({ status: 'FAILED', reason: `no step ran: ${problem}`, decisive: null });
    await this.runSteps();
    // a shutdown after the request does not undo it: the agent journals the reboot and leaves it to the next start
    if (this.rebootStep !== null && (this.stopKind === null || this.stopKind === 'shutdown')) return this.rebootingReport(this.rebootStep);
    const { finished, total, stopKind: stop, haltReason: halted } = this;
    return this.report(decideOutcome({ finished, total, stop, halted, timeoutMs: this.job.timeoutMs }));
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
    this.finalReport = { ...final, status_details: { ...final.status_details, duration_ms: durationMs } };
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
    try {
      const outcome = await runKillLadder(createJobTarget(this.job.jobId, process.pid), this.options.killGraceMs, this.options.clock);
      if (outcome !== 'gone') this.log.warn(`stopped processes the job left behind (${outcome})`, { jobId: this.job.jobId });
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
