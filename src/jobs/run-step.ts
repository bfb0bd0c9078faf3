// Runs one step as its user: resolves the executable in the step's PATH,
// spawns it (as root: switched to its user, see launch.ts) in its own process group
// with a clean environment, captures its output within bounds, enforces the
// step's own time limit and stops it through the kill ladder on request.
//
// INVARIANTS
// - done never rejects: every failure, including ones before the spawn,
//   becomes a StepResult with failed=true and a failureReason.
// - Both pipes are read in flowing mode from the spawn on; reading stops only
//   after the step's process group is gone (then only escaped daemons could
//   still hold a pipe, and they are not waited for).
// - The first stop wins; the ladder runs at most once per reason of stopping.
import { stat } from 'node:fs/promises';
import path from 'node:path';
import { execa } from 'execa';
import type { Clock } from '../clock/clock.js';
import { MAX_JOB_NAME_CHARS } from '../contract/limits.js';
import { truncateText } from '../log/escape.js';
import type { Log } from '../log/log.js';
import { describeError } from '../errors/errors.js';
import { isExecutableFile } from './executable.js';
import { createGroupTarget, runKillLadder } from './kill-ladder.js';
import { planLaunch, type AgentPrivileges, type Launch } from './launch.js';
import { createOutputBuffer, type CapturedText, type OutputBuffer } from './output-buffer.js';
import { createStepResult, outputFields, type StepIdentity } from './step-result.js';
import { REBOOT_EXIT_CODE, type StepResult, type StepSpec } from './types.js';
import type { UserInfo } from './users.js';

/** Why a running step is being stopped. */
export type StopKind = 'job-timeout' | 'step-timeout' | 'cancel' | 'shutdown' | 'limit';

/** The job's systemd unit as a step sees it (job-unit.ts, job-run.ts). */
export interface StepUnit {
  /** The launch run inside a scope of the job's slice (or, while the agent stops, outside it: job-unit.ts). */
  wrap(launch: Launch): Launch;
  /** After the step's exit: the reason when the job hit a limit meanwhile (from the cgroup's counters), else null. */
  checkLimits(): Promise<string | null>;
  /** Why the job stopped its steps for a limit ("out of memory: ..."), once it did. */
  limitReason(): string | null;
}

/** What a step needs besides its spec. */
export interface StepContext {
  jobId: string;
  jobName: string;
  /** The run-as account, already looked up. */
  user: UserInfo;
  /** What the agent holds: decides how the step becomes its user (launch.ts). */
  agent: AgentPrivileges;
  /** The job's unit when limits are enforced; absent, the step is spawned directly. */
  unit?: StepUnit;
  cwd: string;
  /** PATH for the step, also where its executable is looked up. */
  path: string;
  maxOutput: number;
  /** Called every RECLAIM_EVERY_BYTES of output read (both streams): frees consumed chunks early. */
  reclaimMemory?: () => void;
  killGraceMs: number;
  /** The job's limit, named in the reason when it runs out. */
  jobTimeoutMs: number;
  clock: Clock;
  log: Log;
}

/** A running step. */
export interface StepRun {
  done: Promise<StepResult>;
  /** Stops the step through the kill ladder; the first call decides how the result reads. */
  stop(kind: StopKind): void;
  /** Output captured so far (for progress reports). */
  partial(): { stdout: CapturedText; stderr: CapturedText };
}

const NO_OUTPUT: CapturedText = { text: '', bytes: 0, truncated: false, lines: 0 };
/**
 * Output read between two reclaimMemory calls. 4 MiB keeps the agent's growth
 * under a 256 MiB flood near 11 MiB for about 0.3 ms per call (the
 * benchmark machine); without it, it was 40 MiB.
 */
const RECLAIM_EVERY_BYTES = 4 * 1024 * 1024;
/** The reason timers are cancelled with: abort() without one builds a DOMException with a stack each time. */
const SETTLED = 'settled';

/** Starts `spec` in `context`; see StepRun. */
export function startStep(spec: StepSpec, context: StepContext): StepRun {
  const { clock } = context;
  const startedAtMs = clock.now();
  const startedMono = clock.monotonic();
  const stdout = createOutputBuffer(context.maxOutput, { countLines: false });
  const stderr = createOutputBuffer(context.maxOutput);
  const timer = new AbortController();
  let stopKind: StopKind | null = null;
  let pgid: number | null = null;
  let ladder: Promise<unknown> | null = null;
  let finished = false;

  const startLadder = (): void => {
    if (pgid === null || ladder !== null) return;
    ladder = runKillLadder(createGroupTarget(pgid), context.killGraceMs, clock).catch((error: unknown) => {
      context.log.error(`could not stop step "${spec.name}": ${describeError(error)}`, { jobId: context.jobId, step: spec.name });
    });
  };

  const stop = (kind: StopKind): void => {
    if (finished || stopKind !== null) return;
    stopKind = kind;
    startLadder();
  };

  if (spec.timeoutMs !== null) {
    clock.sleep(spec.timeoutMs, timer.signal).then(
      () => stop('step-timeout'),
      () => undefined,
    );
  }

  const execute = async (): Promise<Outcome> => {
    const command = describeCommand(spec);
    const asOtherUser = context.agent.uid === 0 && context.user.uid !== 0;
    const resolved = await resolveExecutable(command[0] ?? '', context.cwd, context.path, asOtherUser);
    if ('problem' in resolved) return { kind: 'not-started', reason: resolved.problem };
    if (stopKind !== null) return { kind: 'not-started', reason: null };
    const planned = planLaunch(resolved.file, command.slice(1), context.user, context.agent, context.unit === undefined);
    if ('problem' in planned) return { kind: 'not-started', reason: planned.problem };
    const launch = context.unit ? context.unit.wrap(planned) : planned;
    const env = buildStepEnv(spec, context);
    let child;
    try {
      child = execa(launch.file, launch.args, {
        cwd: context.cwd,
        env,
        extendEnv: false,
        uid: launch.uid,
        gid: launch.gid,
        stdin: 'ignore',
        stdout: 'pipe',
        stderr: 'pipe',
        buffer: false,
        detached: true,
        cleanup: false,
        reject: false,
        stripFinalNewline: false,
      });
    } catch (error) {
      return { kind: 'not-started', reason: `could not start: ${describeError(error)}` };
    }
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
      child.once('exit', (code, signal) => resolve({ code, signal }));
    });
    let unreclaimed = 0;
    const consume = (sink: OutputBuffer) => (chunk: Buffer): void => {
      sink.write(chunk);
      unreclaimed += chunk.length;
      if (unreclaimed >= RECLAIM_EVERY_BYTES && context.reclaimMemory) {
        unreclaimed = 0;
        context.reclaimMemory();
      }
    };
    child.stdout?.on('data', consume(stdout));
    child.stderr?.on('data', consume(stderr));
    let closed = false;
    const streamsClosed = Promise.all([whenClosed(child.stdout), whenClosed(child.stderr)]).then(() => {
      closed = true;
    });
    if (child.pid !== undefined) {
      pgid = child.pid;
      if (stopKind !== null) startLadder();
    }
    const result = await Promise.race([child, exited.then(() => null)]);
    if (result !== null && (result.exitCode === undefined || child.pid === undefined) && result.signal === undefined) {
      // never ran: spawn error (execa resolved without an exit)
      return { kind: 'not-started', reason: `could not start: ${result.cause instanceof Error ? result.cause.message : result.shortMessage}` };
    }
    const exit = await exited;
    // whatever is left in the group (background children holding the pipes) goes with its leader
    if (ladder === null) ladder = runKillLadder(createGroupTarget(child.pid ?? -1), context.killGraceMs, clock);
    await ladder;
    // the kernel's counters, not the signal, say whether a limit ended it (an OOM kill is a SIGKILL like any other)
    const limit = context.unit ? await context.unit.checkLimits() : null;
    if (limit !== null && stopKind === null) stopKind = 'limit';
    // usually both pipes closed with the exit: no timer needed then
    const drained = closed || (await raceSleep(streamsClosed, context.killGraceMs + 1000, clock));
    if (!drained) {
      context.log.warn(`step "${spec.name}" exited but a process outside its group still holds its output; no longer reading it`, {
        jobId: context.jobId,
        step: spec.name,
      });
      child.stdout?.destroy();
      child.stderr?.destroy();
    }
    await child;
    return { kind: 'exited', code: exit.code, signal: exit.signal };
  };

  const done = execute()
    .catch((error: unknown): Outcome => ({ kind: 'not-started', reason: `could not run: ${describeError(error)}` }))
    .then((outcome) => {
      finished = true;
      timer.abort(SETTLED);
      return buildResult(spec, context, outcome, stopKind, { wallMs: startedAtMs, mono: startedMono }, stdout.capture(), stderr.capture());
    });

  return {
    done,
    stop,
    partial: () => ({ stdout: stdout.capture(), stderr: stderr.capture() }),
  };
}

/** A StepResult for a step that failed before it could start (e.g. its user does not exist). */
export function createUnstartedResult(spec: StepSpec, reason: string, clock: Pick<Clock, 'now'>): StepResult {
  return createStepResult(stepIdentity(spec, clock.now()), { failed: true, ignored: spec.ignoreStepFailure, failureReason: reason });
}

/** What names `spec` in its result, started at `startedAtMs` (wall clock). */
export function stepIdentity(spec: StepSpec, startedAtMs: number): StepIdentity {
  return {
    name: spec.name,
    argv: describeCommand(spec),
    handler: spec.action.type === 'runHandler' ? spec.action.handlerPath : null,
    user: spec.user,
    startedAt: new Date(startedAtMs).toISOString(),
  };
}

/** Formats a limit for reasons: 200ms, 5s, 1.5s, 2m, 1h. */
export function formatLimit(ms: number): string {
  if (ms >= 3_600_000 && ms % 3_600_000 === 0) return `${ms / 3_600_000}h`;
  if (ms >= 60_000 && ms % 60_000 === 0) return `${ms / 60_000}m`;
  if (ms >= 1000) return `${Number((ms / 1000).toFixed(1))}s`;
  return `${ms}ms`;
}

type Outcome =
  | { kind: 'not-started'; reason: string | null }
  | { kind: 'exited'; code: number | null; signal: NodeJS.Signals | null };

// argv as the job asked for it; a handler gets the run-as user as $1 (AWS convention).
function describeCommand(spec: StepSpec): string[] {
  return spec.action.type === 'runCommand' ? [...spec.action.argv] : [spec.action.handlerPath, spec.user, ...spec.action.args];
}

function buildStepEnv(spec: StepSpec, context: StepContext): Record<string, string> {
  return {
    PATH: context.path,
    HOME: context.user.home,
    USER: context.user.name,
    LOGNAME: context.user.name,
    SHELL: context.user.shell,
    LANG: 'C.UTF-8',
    CLOUDJOBS_JOB_ID: context.jobId,
    // offers with longer names are REJECTED; `cloudjobs exec` builds its own offer, so bound it here too (E2BIG)
    CLOUDJOBS_JOB_NAME: truncateText(context.jobName, MAX_JOB_NAME_CHARS),
    CLOUDJOBS_STEP: spec.name,
  };
}

// A name with "/" may point into a directory the step's user can write (its
// work dir, its home): root does not look there for another user (it would
// follow that user's symlinks); the exec, made as the user, finds out.
async function resolveExecutable(
  name: string,
  cwd: string,
  searchPath: string,
  asOtherUser: boolean,
): Promise<{ file: string } | { problem: string }> {
  if (name === '') return { problem: 'the command is empty' };
  if (name.includes('/')) {
    const file = path.resolve(cwd, name);
    if (asOtherUser) return { file };
    const info = await stat(file).catch(() => null);
    if (info === null) return { problem: `"${name}" does not exist` };
    if (!info.isFile() || (info.mode & 0o111) === 0) return { problem: `"${name}" is not an executable file` };
    return { file };
  }
  for (const dir of searchPath.split(':')) {
    if (!path.isAbsolute(dir)) continue;
    const file = path.join(dir, name);
    if (await isExecutableFile(file)) return { file };
  }
  return { problem: `"${name}" not found in PATH (${searchPath})` };
}

function whenClosed(stream: NodeJS.ReadableStream | null | undefined): Promise<void> {
  if (!stream) return Promise.resolve();
  return new Promise((resolve) => {
    stream.once('close', () => resolve());
    stream.once('end', () => resolve());
    stream.once('error', () => resolve());
  });
}

async function raceSleep(work: Promise<unknown>, ms: number, clock: Clock): Promise<boolean> {
  const timer = new AbortController();
  try {
    return await Promise.race([work.then(() => true), clock.sleep(ms, timer.signal).then(() => false)]);
  } finally {
    timer.abort(SETTLED);
  }
}

function describeStop(kind: StopKind, spec: StepSpec, context: StepContext): string {
  switch (kind) {
    case 'job-timeout':
      return `stopped: the job's time limit of ${formatLimit(context.jobTimeoutMs)} ran out`;
    case 'step-timeout':
      return `stopped: its time limit of ${formatLimit(spec.timeoutMs ?? 0)} ran out`;
    case 'cancel':
      return 'stopped: the job was canceled';
    case 'shutdown':
      return 'stopped by agent shutdown';
    case 'limit':
      return context.unit?.limitReason() ?? 'stopped: the job reached one of its resource limits';
  }
}

function buildResult(
  spec: StepSpec,
  context: StepContext,
  outcome: Outcome,
  stopKind: StopKind | null,
  /** The step's start: wall clock for startedAt, monotonic for its duration. */
  started: { wallMs: number; mono: number },
  out: CapturedText,
  err: CapturedText,
): StepResult {
  const exitCode = outcome.kind === 'exited' ? outcome.code : null;
  const signal = outcome.kind === 'exited' ? outcome.signal : null;
  let failureReason: string | null = null;
  if (stopKind !== null) failureReason = describeStop(stopKind, spec, context);
  else if (outcome.kind === 'not-started') failureReason = outcome.reason ?? 'did not start';
  else if (signal !== null) failureReason = `was killed by signal ${signal}`;
  else if (exitCode !== 0 && exitCode !== REBOOT_EXIT_CODE) failureReason = `exited with code ${exitCode}`;
  else if (err.lines > spec.allowStdErr) {
    failureReason = `wrote ${err.lines} line${err.lines === 1 ? '' : 's'} to stderr, allowStdErr is ${spec.allowStdErr}`;
  }
  const failed = failureReason !== null;
  // exit 194 is a request, not a failure; the engine decides whether it may be honoured
  const rebootRequested = !failed && exitCode === REBOOT_EXIT_CODE;
  const stdoutText = outcome.kind === 'exited' ? out : NO_OUTPUT;
  const stderrText = outcome.kind === 'exited' ? err : NO_OUTPUT;
  return createStepResult(stepIdentity(spec, started.wallMs), {
    exitCode,
    signal,
    timedOut: stopKind === 'job-timeout' || stopKind === 'step-timeout',
    canceled: stopKind === 'cancel' || stopKind === 'shutdown',
    durationMs: Math.max(0, context.clock.monotonic() - started.mono),
    ...outputFields(stdoutText, stderrText),
    failed,
    ignored: failed && spec.ignoreStepFailure,
    failureReason,
    ...(rebootRequested ? { rebootRequested: true as const } : {}),
  });
}
