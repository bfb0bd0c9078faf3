// Runs a validated job: its steps in order (parallel groups concurrently, at
// most maxParallel at once), the finalStep when everything succeeded, bounded
// by the job's time limit, stoppable by cancel or shutdown; then the report.
//
// INVARIANTS
// - done never rejects; whatever happens it resolves to a final StatusReport.
// - A step starts only after the previous step's onStepEnd hook settled (the
//   journal has it on disk), and only while the job is neither stopped nor failed.
// - When done resolves, no process of the job is left: each step's group went
//   with its leader, and a last sweep kills anything still carrying
//   CLOUDJOBS_JOB_ID=<jobId> (daemons that called setsid). Job dirs are removed.
import type { Clock } from '../clock/clock.js';
import type { StatusReport } from '../contract/types.js';
import { describeError } from '../errors/errors.js';
import type { Log } from '../log/log.js';
import { createJobTarget, runKillLadder } from './kill-ladder.js';
import { composeReport, describeStepOutcome } from './report.js';
import { readAgentPrivileges, type AgentPrivileges } from './launch.js';
import { createUnstartedResult, formatLimit, startStep, type StepRun, type StopKind } from './run-step.js';
import type { NormalizedJob, StepResult, StepSpec } from './types.js';
import type { UserInfo } from './users.js';
import { createJobDir, prepareWorkRoot, removeJobDir } from './work-dir.js';

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

/** A job being run. */
export interface JobRun {
  /** The final report; never rejects. */
  done: Promise<StatusReport>;
  /** An IN_PROGRESS report: steps done and output so far, in the same full shape. */
  snapshot(): StatusReport;
  /** Stops the job through the kill ladder: cancel reports CANCELED, shutdown FAILED. */
  stop(kind: 'cancel' | 'shutdown'): void;
}

type JobStop = Extract<StopKind, 'job-timeout' | 'cancel' | 'shutdown'>;

interface Running {
  run: StepRun;
  spec: StepSpec;
  label: string;
  startedAtMs: number;
}

/** Starts running `job`; see JobRun. */
export function startJob(job: NormalizedJob, options: EngineOptions, hooks: JobHooks = {}): JobRun {
  const { clock } = options;
  const log = options.log.child({ jobId: job.jobId, jobName: job.jobName });
  const agentUid = options.agentUid ?? process.getuid?.() ?? 0;
  const startedAtMs = clock.now();
  const total = countSteps(job);
  const results: StepResult[] = [];
  const labels = new Map<StepResult, string>();
  const running = new Set<Running>();
  const users = new Map<string, Promise<UserInfo | null>>();
  const jobDirs = new Map<string, { user: UserInfo; dir: Promise<string> }>();
  const timer = new AbortController();
  let jobStop: JobStop | null = null;
  let decisive: StepResult | null = null;
  let sequence = 0;
  let finalReport: StatusReport | null = null;
  let privileges: Promise<AgentPrivileges> | null = null;

  const stopAll = (kind: JobStop): void => {
    if (jobStop !== null || finalReport !== null) return;
    jobStop = kind;
    log.info(`stopping job: ${kind}`, { jobId: job.jobId });
    for (const entry of running) entry.run.stop(kind);
  };

  const mayContinue = (): boolean => jobStop === null && decisive === null;

  const callHook = async (name: string, call: () => void | Promise<void>): Promise<void> => {
    try {
      await call();
    } catch (error) {
      log.error(`${name} hook failed: ${describeError(error)}`, { jobId: job.jobId });
    }
  };

  const resolveUser = (name: string): Promise<UserInfo | null> => {
    let found = users.get(name);
    if (found === undefined) {
      found = options.lookupUser(name);
      users.set(name, found);
    }
    return found;
  };

  const resolveJobDir = (user: UserInfo): Promise<string> => {
    let entry = jobDirs.get(user.name);
    if (entry === undefined) {
      entry = { user, dir: createJobDir(options.workDir, job.jobId, user, agentUid) };
      jobDirs.set(user.name, entry);
    }
    return entry.dir;
  };

  const runOne = async (spec: StepSpec, label: string): Promise<void> => {
    sequence += 1;
    const index = sequence;
    await callHook('onStepStart', () => hooks.onStepStart?.(index, total, spec.name));
    log.info(`starting ${label}`, { jobId: job.jobId, step: spec.name });
    const result = await executeStep(spec, label);
    results.push(result);
    labels.set(result, label);
    if (result.failed && !result.ignored && decisive === null) decisive = result;
    log.info(`${label} ${result.failed ? (result.ignored ? 'failed (ignored)' : 'failed') : 'succeeded'}`, {
      jobId: job.jobId,
      step: spec.name,
      exitCode: result.exitCode,
      reason: result.failureReason,
    });
    await callHook('onStepEnd', () => hooks.onStepEnd?.(result, index, total));
  };

  const executeStep = async (spec: StepSpec, label: string): Promise<StepResult> => {
    let user: UserInfo | null;
    try {
      user = await resolveUser(spec.user);
    } catch (error) {
      return createUnstartedResult(spec, `could not look up user "${spec.user}": ${describeError(error)}`, clock);
    }
    if (user === null) return createUnstartedResult(spec, `user "${spec.user}" does not exist`, clock);
    let cwd: string;
    try {
      cwd = await resolveJobDir(user);
    } catch (error) {
      return createUnstartedResult(spec, `could not create its working directory: ${describeError(error)}`, clock);
    }
    privileges ??= options.agentPrivileges ? Promise.resolve(options.agentPrivileges) : readAgentPrivileges(agentUid);
    const entry: Running = {
      spec,
      label,
      startedAtMs: clock.now(),
      run: startStep(spec, {
        jobId: job.jobId,
        jobName: job.jobName,
        user,
        agent: await privileges,
        cwd,
        path: options.path,
        maxOutput: options.maxOutput,
        reclaimMemory: options.reclaimMemory,
        killGraceMs: options.killGraceMs,
        jobTimeoutMs: job.timeoutMs,
        clock,
        log,
      }),
    };
    running.add(entry);
    if (jobStop !== null) entry.run.stop(jobStop);
    try {
      return await entry.run.done;
    } finally {
      running.delete(entry);
    }
  };

  const runGroup = async (members: readonly StepSpec[], label: string): Promise<void> => {
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < members.length && mayContinue()) {
        const at = next;
        next += 1;
        await runOne(members[at] as StepSpec, `${label}.${at + 1}`);
      }
    };
    const width = Math.max(1, Math.min(options.maxParallel, members.length));
    await Promise.all(Array.from({ length: width }, worker));
  };

  const runSteps = async (): Promise<void> => {
    for (const [i, node] of job.steps.entries()) {
      if (!mayContinue()) return;
      if (node.kind === 'step') await runOne(node.step, `step ${i + 1}`);
      else await runGroup(node.members, `step ${i + 1}`);
    }
    if (job.finalStep !== null && mayContinue()) await runOne(job.finalStep, 'final step');
  };

  const decide = (): Pick<StatusReport, 'status' | 'reason'> & { decisive: StepResult | null } => {
    const stoppedStep = results.find((r) => r.timedOut || r.canceled) ?? null;
    const everythingRan = results.length === total;
    if (jobStop !== null && (stoppedStep !== null || !everythingRan)) {
      const where = stoppedStep !== null ? describeStepOutcome(labels.get(stoppedStep) ?? stoppedStep.name, stoppedStep) : null;
      const after = `after ${results.length} of ${total} steps`;
      if (jobStop === 'shutdown') return { status: 'FAILED', reason: 'stopped by agent shutdown', decisive: stoppedStep };
      if (jobStop === 'cancel') return { status: 'CANCELED', reason: where ?? `the job was canceled ${after}`, decisive: stoppedStep };
      return {
        status: 'TIMED_OUT',
        reason: where ?? `the job's time limit of ${formatLimit(job.timeoutMs)} ran out ${after}`,
        decisive: stoppedStep,
      };
    }
    if (decisive !== null) {
      return {
        status: decisive.timedOut ? 'TIMED_OUT' : 'FAILED',
        reason: describeStepOutcome(labels.get(decisive) ?? decisive.name, decisive),
        decisive,
      };
    }
    const ok = results.filter((r) => !r.failed).length;
    const ignored = results.length - ok;
    const suffix = ignored === 0 ? '' : `, ${ignored} failed with ignoreStepFailure set`;
    return { status: 'SUCCEEDED', reason: `${ok} of ${results.length} steps succeeded${suffix}`, decisive: null };
  };

  const cleanUp = async (): Promise<void> => {
    timer.abort();
    try {
      const outcome = await runKillLadder(createJobTarget(job.jobId, process.pid), options.killGraceMs, clock);
      if (outcome !== 'gone') log.warn(`stopped processes the job left behind (${outcome})`, { jobId: job.jobId });
    } catch (error) {
      log.error(`could not sweep the job's leftover processes: ${describeError(error)}`, { jobId: job.jobId });
    }
    // removed as their users, never by root walking a tree its users can write (work-dir.ts)
    for (const { user, dir } of jobDirs.values()) {
      try {
        privileges ??= options.agentPrivileges ? Promise.resolve(options.agentPrivileges) : readAgentPrivileges(agentUid);
        await removeJobDir(await dir, { user, agent: await privileges, clock, killGraceMs: options.killGraceMs });
      } catch (error) {
        log.warn(`could not remove a job directory: ${describeError(error)}`, { jobId: job.jobId });
      }
    }
  };

  const run = async (): Promise<StatusReport> => {
    clock.sleep(job.timeoutMs, timer.signal).then(
      () => stopAll('job-timeout'),
      () => undefined,
    );
    const problem = await prepareWorkRoot(options.workDir, agentUid);
    if (problem !== null) {
      return report({ status: 'FAILED', reason: `no step ran: ${problem}`, decisive: null });
    }
    await runSteps();
    return report(decide());
  };

  const report = (verdict: Pick<StatusReport, 'status' | 'reason'> & { decisive: StepResult | null }): StatusReport =>
    composeReport({
      status: verdict.status,
      reason: verdict.reason,
      decisive: verdict.decisive,
      results,
      includeStdOut: job.includeStdOut,
      agentVersion: options.agentVersion,
      durationMs: clock.now() - startedAtMs,
    });

  const done = run()
    .catch((error: unknown) => {
      log.error(`job engine failed: ${describeError(error)}`, { jobId: job.jobId });
      for (const entry of running) entry.run.stop('shutdown');
      return report({ status: 'FAILED', reason: `the agent failed while running the job: ${describeError(error)}`, decisive: null });
    })
    .then(async (final) => {
      await cleanUp();
      finalReport = { ...final, status_details: { ...final.status_details, duration_ms: clock.now() - startedAtMs } };
      return finalReport;
    });

  const snapshot = (): StatusReport => {
    if (finalReport !== null) return finalReport;
    const active = [...running];
    const partial: StepResult[] = active.map((entry) => {
      const output = entry.run.partial();
      return {
        ...createUnstartedResult(entry.spec, '', clock),
        failed: false,
        ignored: false,
        failureReason: null,
        durationMs: clock.now() - entry.startedAtMs,
        stdout: output.stdout.text,
        stderr: output.stderr.text,
        stdoutBytes: output.stdout.bytes,
        stderrBytes: output.stderr.bytes,
        stdoutTruncated: output.stdout.truncated,
        stderrTruncated: output.stderr.truncated,
        stderrLines: output.stderr.lines,
      };
    });
    const runningText = active.map((entry) => describeLabel(entry.label, entry.spec.name)).join(', ');
    const base = composeReport({
      status: 'IN_PROGRESS',
      reason: `${results.length} of ${total} steps done${runningText === '' ? '' : `; running ${runningText}`}`,
      decisive: null,
      results: [...results, ...partial],
      includeStdOut: job.includeStdOut,
      agentVersion: options.agentVersion,
      durationMs: clock.now() - startedAtMs,
      extraDetails: { running: active.map((entry) => entry.spec.name) },
    });
    const details = base.status_details as { steps: unknown[] };
    return {
      ...base,
      exit_code: null,
      failed_step: null,
      executed_steps: results.length,
      status_details: { ...base.status_details, steps: details.steps.slice(0, results.length) },
    };
  };

  return {
    done,
    snapshot,
    stop: (kind) => stopAll(kind),
  };
}

/** Counts the steps a job can run: parallel members one by one, and its finalStep. */
export function countSteps(job: NormalizedJob): number {
  let count = job.finalStep === null ? 0 : 1;
  for (const node of job.steps) count += node.kind === 'step' ? 1 : node.members.length;
  return count;
}

function describeLabel(label: string, name: string): string {
  return label === name ? label : `${label} (${JSON.stringify(name.length > 200 ? `${name.slice(0, 200)}…` : name)})`;
}
