// Why the agent is being stopped while a job runs, decided only from what root
// alone can say. Pure: the caller gives systemd's job for the agent's unit
// (service/unit-job.ts) and the running steps as the agent itself planned them.
//
// THE TRUST RULE (README, "What the agent believes"): nothing a process says
// about itself decides anything. argv, environ, /proc/PID/cmdline and files a
// non-root user can create are never read here: any local user can start a
// process named `systemctl` carrying CLOUDJOBS_JOB_ID (the id is in the
// world-readable status file), and a step's own user can do the same from
// inside the step. What is believed:
//   - systemd's queued job for the agent's unit: only root (or whom polkit lets
//     manage units, which defaults to root) can queue a `restart` of a system
//     unit. `stop` (systemctl stop, shutdown, package removal) is not a restart.
//   - the job document as the agent planned it: the cloud's instruction, which
//     the agent itself started, with the run-as user the agent chose.
//
// The causes:
//   'restart'         root queued a restart of the unit (systemctl restart, a
//                     package install's postinst, the self-update handler's
//                     dpkg): the agent is replaced, not stopped, so the job need
//                     not drain. Running steps end by themselves (bounded by
//                     agent.drain_timeout, like any drain), no further step
//                     starts, and once no step runs the job is journaled
//                     RESTARTING for the next agent process (agent.ts).
//   'restart-command' the same, and the only running step is the job's own root
//                     command that restarts the unit (`systemctl restart
//                     cloudjobs`): it cannot end before the agent does, so it is
//                     cut (stopped through the kill ladder) at once and reported
//                     as cut, with the reason, never as having exited 0.
//   'outside'         anything else (no systemd, a stop, no job queued): drain.
import type { StepResult } from '../jobs/types.js';
import type { UnitJob } from '../service/unit-job.js';

export type { UnitJob };

/** A running step as the agent planned it (never as its processes describe themselves). */
export interface PlannedRun {
  /** 0-based journal index. */
  index: number;
  /** The document's argv (runCommand) or [handler, ...args]. */
  argv: readonly string[];
  user: string;
  /** A member of a parallel group. */
  inGroup: boolean;
}

/** The stop cause, with the evidence that shows it. */
export type StopCause =
  | { kind: 'restart'; evidence: string }
  | { kind: 'restart-command'; evidence: string; command: string; stepIndex: number }
  | { kind: 'outside'; evidence: string };

/** What decideStopCause looks at. */
export interface StopEvidence {
  /** The agent's unit (from /proc/self/cgroup), or null outside systemd. */
  unit: string | null;
  /** systemd's job for that unit at the stop, or null when none is queued. */
  unitJob: UnitJob | null;
  running: readonly PlannedRun[];
}

// Programs that restart a unit, and the verbs that restart it.
const UNIT_CONTROLLERS = new Set(['systemctl', 'deb-systemd-invoke', 'service', 'invoke-rc.d']);
const RESTART_VERBS = new Set(['restart', 'try-restart', 'reload-or-restart', 'try-reload-or-restart', 'condrestart', 'force-reload']);
// A command line is looked at only this far (the document is outside data).
const MAX_WORDS = 64;
const MAX_SHOWN = 200;

/** Decides the stop cause from root's evidence only. */
export function decideStopCause(evidence: StopEvidence): StopCause {
  const { unit, unitJob } = evidence;
  if (unit === null) return { kind: 'outside', evidence: 'the agent does not run as a systemd unit' };
  if (unitJob === null) return { kind: 'outside', evidence: `systemd has no job queued for ${unit} (a signal, not a restart)` };
  const job = `systemd job ${unitJob.id} (${unitJob.type} ${unit})`;
  if (unitJob.type !== 'restart') return { kind: 'outside', evidence: `${job} is not a restart` };
  const [only, ...others] = evidence.running;
  if (only !== undefined && others.length === 0 && !only.inGroup && only.user === 'root') {
    const command = findRestartCommand(only.argv, unit);
    if (command !== null) return { kind: 'restart-command', evidence: job, command, stepIndex: only.index };
  }
  return { kind: 'restart', evidence: job };
}

// The unit-restarting command in a step's argv (or in its `sh -c` script), shown bounded; null when none.
function findRestartCommand(argv: readonly string[], unit: string): string | null {
  const names = new Set([unit, unit.replace(/\.service$/, '')]);
  for (const words of withShellCommands(argv)) {
    const cut = words.slice(0, MAX_WORDS);
    if (!UNIT_CONTROLLERS.has(baseName(cut[0] ?? ''))) continue;
    const args = cut.slice(1).filter((w) => !w.startsWith('-'));
    if (args.some((w) => RESTART_VERBS.has(w)) && args.some((w) => names.has(w))) return show(cut);
  }
  return null;
}

// `sh -c "apt-get update && systemctl restart cloudjobs"`: the commands of the script too.
function withShellCommands(argv: readonly string[]): (readonly string[])[] {
  const shell = ['sh', 'bash', 'dash'].includes(baseName(argv[0] ?? '')) && argv[1] === '-c' && typeof argv[2] === 'string';
  if (!shell) return [argv];
  const script = (argv[2] as string).slice(0, 4096);
  const inner = script
    .split(/[;&|\n()]+/)
    .map((part) => part.trim().split(/\s+/).filter((w) => w !== '' && !/^[A-Za-z_][A-Za-z0-9_]*=/.test(w) && w !== 'sudo' && w !== 'exec'))
    .filter((words) => words.length > 0);
  return [argv, ...inner];
}

function baseName(path: string): string {
  return path.slice(path.lastIndexOf('/') + 1);
}

function show(words: readonly string[]): string {
  const text = words.join(' ');
  return text.length > MAX_SHOWN ? `${text.slice(0, MAX_SHOWN)}…` : text;
}

/**
 * The result recorded for a step cut because it restarts the agent: its real
 * exit (killed, no exit code) and output, marked as cut with the reason. It
 * does not fail the job: root's restart of the unit, which the step asked
 * for, is under way.
 */
export function cutStepResult(result: StepResult, cause: Extract<StopCause, { kind: 'restart-command' }>): StepResult {
  const note = `[cut: the step restarts the agent (${cause.command}); ${cause.evidence} was under way, so the agent stopped the step and the job goes on in the next agent process]\n`;
  const added = result.stdout === '' || result.stdout.endsWith('\n') ? note : `\n${note}`;
  return {
    ...result,
    failed: false,
    ignored: false,
    failureReason: null,
    stdout: `${result.stdout}${added}`,
    stdoutBytes: result.stdoutBytes + Buffer.byteLength(added),
  };
}
