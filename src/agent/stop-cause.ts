// Why the agent is being stopped while a job runs: by the job itself (it
// installs the cloudjobs package, whose postinst restarts the unit, or it runs
// `systemctl restart cloudjobs`), or by anyone else. Pure: the caller lists the
// command lines of the job's processes (those carrying its CLOUDJOBS_JOB_ID).
//
// Why it matters: a stop from outside drains (the job runs to its end, up to
// agent.drain_timeout). A stop the job caused cannot drain: the job would wait
// for the restart and the restart for the job. So the agent hands the job over
// to the next agent process instead (agent.ts, "restarts"):
//   'package'         a package manager runs in the job: let the running step
//                     end (dpkg finishes once its postinst queued the restart),
//                     then journal the job RESTARTING and exit; the new agent
//                     goes on with the next step.
//   'restart-command' a step waits for the agent to restart (systemctl restart
//                     cloudjobs): it cannot end before the agent does, so the
//                     step counts as succeeded ("restart requested by the
//                     step"), the job is journaled RESTARTING and the agent
//                     exits now; systemd ends the waiting command with the unit.
//   'outside'         nothing in the job asked: drain as for any stop.

import type { StepResult, StepSpec } from '../jobs/types.js';

/** The stop cause, with the command that shows it. */
export type StopCause =
  | { kind: 'package'; command: string }
  | { kind: 'restart-command'; command: string }
  | { kind: 'outside' };

// Programs that install packages (and so run cloudjobs' postinst when it is among them).
const PACKAGE_MANAGERS = new Set(['dpkg', 'apt', 'apt-get', 'aptitude', 'unattended-upgrade']);
// Programs that restart a unit, and the verbs that stop or restart it.
const UNIT_CONTROLLERS = new Set(['systemctl', 'deb-systemd-invoke', 'service', 'invoke-rc.d']);
const STOPPING_VERBS = new Set(['restart', 'try-restart', 'reload-or-restart', 'try-reload-or-restart', 'condrestart', 'force-reload', 'stop']);
const UNIT_NAMES = new Set(['cloudjobs', 'cloudjobs.service']);
// A command line is looked at only this far (a step's argv is hostile input).
const MAX_WORDS = 64;
const MAX_SHOWN = 200;

/** Decides the stop cause from the command lines (argv) of the running job's processes. */
export function decideStopCause(commands: readonly (readonly string[])[]): StopCause {
  let restart: StopCause | null = null;
  for (const argv of commands.flatMap(withShellCommands)) {
    const words = argv.slice(0, MAX_WORDS);
    const program = baseName(words[0] ?? '');
    // a shell running the postinst of cloudjobs: dpkg configures this package
    const runsPostinst = words.some((w) => /\/cloudjobs\.postinst$/.test(w));
    // the self-update handler (run by a shell: its path is argv[0] or argv[1]) installs cloudjobs from its own unit
    const selfUpdate = words.slice(0, 2).some((w) => /\/cloudjobs\/handlers\/self-update$/.test(w));
    if (PACKAGE_MANAGERS.has(program) || runsPostinst || selfUpdate) return { kind: 'package', command: show(words) };
    if (restart === null && UNIT_CONTROLLERS.has(program) && restartsAgent(words.slice(1))) {
      restart = { kind: 'restart-command', command: show(words) };
    }
  }
  // a restart command inside a package install is the postinst's: the install decides
  return restart ?? { kind: 'outside' };
}

// `systemctl [options] restart [units]`, `service cloudjobs restart`: a verb that stops the agent and the agent's unit.
function restartsAgent(args: readonly string[]): boolean {
  const words = args.filter((w) => !w.startsWith('-'));
  return words.some((w) => STOPPING_VERBS.has(w)) && words.some((w) => UNIT_NAMES.has(w));
}

// `sh -c "apt-get update && apt-get install -y x"`: the commands of the script too (a step's own argv may be a shell).
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

/** The result recorded for a step that waited for the agent to restart: it asked, the restart happens, so it succeeded. */
export function restartedStepResult(spec: StepSpec, startedAt: string, now: number, command: string): StepResult {
  const started = Date.parse(startedAt);
  const stdout = `restart requested by the step (${command}); the agent restarted and went on with the next step\n`;
  return {
    name: spec.name,
    argv: spec.action.type === 'runCommand' ? [...spec.action.argv] : [spec.action.handlerPath, spec.user, ...spec.action.args],
    handler: spec.action.type === 'runHandler' ? spec.action.handlerPath : null,
    user: spec.user,
    exitCode: 0,
    signal: null,
    timedOut: false,
    canceled: false,
    durationMs: Number.isFinite(started) ? Math.max(0, now - started) : 0,
    stdout,
    stderr: '',
    stdoutBytes: Buffer.byteLength(stdout),
    stderrBytes: 0,
    stdoutTruncated: false,
    stderrTruncated: false,
    stderrLines: 0,
    failed: false,
    ignored: false,
    failureReason: null,
    startedAt: Number.isFinite(started) ? startedAt : new Date(now).toISOString(),
  };
}
