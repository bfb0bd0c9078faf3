// Puts a job into its own systemd units: a transient slice per job run that
// carries the limits (MemoryMax, MemorySwapMax=0, TasksMax, CPUQuota) under
// cloudjobs-jobs.slice, and a transient scope per step inside it.
//
// Why a scope per step and not a service: `systemd-run --scope` makes the
// scope for its own process and then execs the step, so the step keeps the
// agent's pipes, environment and process attributes (NoNewPrivileges, the
// unit's sandbox); a transient service would be started by PID 1 with none of
// them. The chain per step is
//   systemd-run --scope --slice=<job slice> -- choom -n 500 -- [setpriv ... --] COMMAND
// choom (util-linux) raises the step's oom_score_adj above the agent's
// (the unit's OOMScoreAdjust=-500 is inherited, so it must be raised
// explicitly, before the step's own code runs) and the user switch happens
// last, as launch.ts plans it (setpriv always: systemd-run is spawned as root).
//
// The slice is PartOf= and Before= the agent's unit: stopping or restarting
// the agent stops the job's slice only after the agent itself has stopped (its
// drain runs first), as KillMode=mixed did when the steps were in the agent's
// own cgroup; a system shutdown stops the agent (draining) before the jobs.
//
// While the agent's unit stops, its stop job puts one on the slice too
// (PartOf=), and systemd starts no new scope in it: systemd-run would fail at
// once. A step that starts while the agent is stopping (a further step of a
// draining job) therefore runs without a scope, in the agent's own cgroup,
// where KillMode=mixed ends it after the agent; choom and setpriv still apply
// (decideStepPlacement, wrapOutsideScope).
//
// INVARIANTS
// - The agent never waits for a systemd job on its job units (--no-block):
//   during a shutdown their stop jobs wait for the agent's own stop.
// - Unit names are made by the agent (a hash of the job id and a random
//   part); nothing the server sends reaches a command line unescaped.
import { createHash, randomBytes } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import { execa } from 'execa';
import { isExecutableFile } from './executable.js';
import { readCgroupLayout, hasController, readCounters, treeDir, type CgroupCounters, type CgroupLayout } from './cgroup.js';
import type { Launch } from './launch.js';
import { quotaPerSecUsec, type EffectiveLimits } from './limits.js';

/** The parent slice of every job's slice. */
const JOBS_SLICE = 'cloudjobs-jobs.slice';
/** oom_score_adj of job processes: the kernel's OOM killer picks them before anything at 0 or below. */
const JOB_OOM_SCORE_ADJ = 500;

/** Paths of the tools the mechanism runs. */
export interface LimitTools {
  systemdRun: string;
  systemctl: string;
  busctl: string;
  /** util-linux choom; null when missing (steps then keep the agent's oom_score_adj). */
  choom: string | null;
}

/** Whether this system can enforce limits, and which it cannot. */
export type LimitSupport =
  | {
      enforced: true;
      tools: LimitTools;
      layout: CgroupLayout;
      /** The agent's own unit (from /proc/self/cgroup), ordered after the job units; null outside a service. */
      agentUnit: string | null;
      /** Limits set but not enforced on this system, one sentence each (e.g. cgroup v1 without memory). */
      gaps: string[];
    }
  | { enforced: false; why: string };

/** Runs a command and returns its exit code and output (execa in production, a fake in tests). */
export type RunCommand = (file: string, args: string[]) => Promise<{ exitCode: number; stdout: string; stderr: string }>;

/** Where a step of a job with enforced limits runs: a scope of the job's slice, or the agent's own cgroup. */
export type StepPlacement = 'scope' | 'agent-cgroup';

/** A job run's slice: wraps steps into scopes inside it, reads its counters, names its cgroup. */
export interface JobUnit {
  slice: string;
  /** The slice's process tree (cgroupfs directory). */
  cgroupDir: string;
  /** The step's launch and where it runs; `agentStopping`: the agent drains (decideStepPlacement). */
  wrap(launch: Launch, agentStopping: boolean): { launch: Launch; placement: StepPlacement };
  counters(): Promise<CgroupCounters>;
  /** Asks systemd to stop the slice (no wait); its processes should be gone already. */
  release(): Promise<void>;
}

const SEARCH = ['/usr/bin', '/bin', '/usr/sbin', '/sbin'];
const COMMAND_TIMEOUT_MS = 30_000;

/** Finds out whether limits can be enforced: root, systemd as PID 1, its tools, the cgroup controllers. */
export async function detectLimitSupport(
  uid: number,
  limits: { memoryMax: number | null; tasksMax: number | null; cpuQuota: number | null },
  paths: { systemdRunDir?: string; cgroupRoot?: string; procSelfCgroup?: string } = {},
): Promise<LimitSupport> {
  if (uid !== 0) return { enforced: false, why: `the agent is not root (uid ${uid}) and cannot create systemd units for jobs` };
  // sd_booted(3): systemd is PID 1 when this directory exists
  if (!(await isDirectory(paths.systemdRunDir ?? '/run/systemd/system'))) {
    return { enforced: false, why: 'systemd is not running (no /run/systemd/system): a container or a system without it' };
  }
  const [systemdRun, systemctl, busctl, choom] = await Promise.all([findTool('systemd-run'), findTool('systemctl'), findTool('busctl'), findTool('choom')]);
  if (systemdRun === null || systemctl === null || busctl === null) {
    return { enforced: false, why: 'systemd-run, systemctl or busctl was not found in /usr/bin or /bin' };
  }
  const layout = await readCgroupLayout(paths.cgroupRoot);
  const gaps: string[] = [];
  const wants: Array<[string, string, boolean]> = [
    ['memory', 'jobs.memory_max', limits.memoryMax !== null],
    ['pids', 'jobs.tasks_max', limits.tasksMax !== null],
    ['cpu', 'jobs.cpu_quota', limits.cpuQuota !== null],
  ];
  for (const [controller, key, wanted] of wants) {
    if (!wanted) continue;
    // on a hybrid system systemd applies MemoryMax= only on the unified tree, which has no controllers
    const usable = controller === 'memory' ? layout.controllers.has('memory') : await hasController(layout, controller);
    if (!usable) gaps.push(`${key} is not enforced: ${describeMissing(controller, layout)}`);
  }
  if (choom === null) gaps.push('job processes keep the agent\'s oom_score_adj: choom (util-linux) was not found');
  const agentUnit = await readAgentUnit(paths.procSelfCgroup ?? '/proc/self/cgroup');
  return { enforced: true, tools: { systemdRun, systemctl, busctl, choom }, layout, agentUnit, gaps };
}

/** Creates the transient slice for one run of job `jobId` with `limits`; throws with systemd's message when it cannot. */
export async function openJobUnit(
  jobId: string,
  limits: EffectiveLimits,
  support: Extract<LimitSupport, { enforced: true }>,
  run: RunCommand = runCommand,
): Promise<JobUnit> {
  const key = `${createHash('sha256').update(jobId).digest('hex').slice(0, 12)}${randomBytes(3).toString('hex')}`;
  const slice = `cloudjobs-jobs-${key}.slice`;
  const started = await run(support.tools.busctl, buildSliceCall(slice, jobId, limits, support.agentUnit));
  if (started.exitCode !== 0) {
    throw new Error(`could not create the job's slice ${slice}: ${firstLine(started.stderr) || `busctl exited with code ${started.exitCode}`}`);
  }
  const cgroupPath = sliceCgroupPath(slice);
  let steps = 0;
  return {
    slice,
    cgroupDir: treeDir(support.layout, cgroupPath),
    wrap: (launch, agentStopping) => {
      steps += 1;
      const placement = decideStepPlacement(support.agentUnit, agentStopping);
      if (placement === 'agent-cgroup') return { launch: wrapOutsideScope(launch, support.tools), placement };
      return { launch: wrapInScope(launch, { slice, unit: `cloudjobs-step-${key}-${steps}`, tools: support.tools, agentUnit: support.agentUnit }), placement };
    },
    counters: () => readCounters(support.layout, cgroupPath),
    release: () => releaseSlice(support, slice, run),
  };
}

/** The busctl arguments that start the job's slice with its limits (StartTransientUnit). */
export function buildSliceCall(slice: string, jobId: string, limits: EffectiveLimits, agentUnit: string | null): string[] {
  const props: string[][] = [
    ['Description', 's', `cloudjobs job ${describeJobId(jobId)}`],
    ['MemoryAccounting', 'b', 'true'],
    ['TasksAccounting', 'b', 'true'],
    ['CPUAccounting', 'b', 'true'],
  ];
  if (limits.memoryMax !== null) props.push(['MemoryMax', 't', String(limits.memoryMax)], ['MemorySwapMax', 't', '0']);
  if (limits.tasksMax !== null) props.push(['TasksMax', 't', String(limits.tasksMax)]);
  if (limits.cpuQuota !== null) props.push(['CPUQuotaPerSecUSec', 't', String(quotaPerSecUsec(limits.cpuQuota))]);
  if (agentUnit !== null) props.push(['Before', 'as', '1', agentUnit], ['PartOf', 'as', '1', agentUnit]);
  return [
    'call',
    '--quiet',
    'org.freedesktop.systemd1',
    '/org/freedesktop/systemd1',
    'org.freedesktop.systemd1.Manager',
    'StartTransientUnit',
    'ssa(sv)a(sa(sv))',
    slice,
    'fail',
    String(props.length),
    ...props.flat(),
    '0',
  ];
}

/**
 * Where a step runs. A scope, except while the agent's own unit stops: its
 * stop job reaches the job's slice through PartOf=, and systemd refuses a new
 * scope there, so the step runs in the agent's cgroup. Outside a unit
 * (agentUnit null: nothing is PartOf= it) a stopping agent keeps the scope.
 */
export function decideStepPlacement(agentUnit: string | null, agentStopping: boolean): StepPlacement {
  return agentUnit !== null && agentStopping ? 'agent-cgroup' : 'scope';
}

/** The step's launch run inside a new scope of `slice`, its oom_score_adj raised first. */
export function wrapInScope(launch: Launch, unit: { slice: string; unit: string; tools: LimitTools; agentUnit: string | null }): Launch {
  const inner = wrapOutsideScope(launch, unit.tools);
  const order = unit.agentUnit === null ? [] : ['-p', `Before=${unit.agentUnit}`];
  return {
    file: unit.tools.systemdRun,
    args: ['--scope', '--quiet', '--collect', `--slice=${unit.slice}`, `--unit=${unit.unit}`, ...order, '--', inner.file, ...inner.args],
    via: launch.via,
  };
}

/** The step's launch without a scope (the agent's own cgroup): its oom_score_adj raised, then the planned user switch. */
export function wrapOutsideScope(launch: Launch, tools: LimitTools): Launch {
  // both ways start as root (systemd-run, choom): the user switch must be setpriv's, after them
  if (launch.uid !== undefined) throw new Error('internal: a step of a job with limits must switch user with setpriv, not the spawn');
  if (tools.choom === null) return launch;
  return { file: tools.choom, args: ['-n', String(JOB_OOM_SCORE_ADJ), '--', launch.file, ...launch.args], via: launch.via };
}

/** The cgroup of a slice: each dash opens a level ("a-b.slice" is /a.slice/a-b.slice). */
export function sliceCgroupPath(slice: string): string {
  const stem = slice.replace(/\.slice$/, '');
  const parts = stem.split('-');
  return parts.map((_, at) => `/${parts.slice(0, at + 1).join('-')}.slice`).join('');
}

/**
 * The job slices of earlier agent processes (a crash, kill -9, a restart
 * whose slice was restarted empty): their cgroup directories, to be swept
 * with the kill ladder and released before this agent runs a job.
 */
export async function findLeftoverSlices(
  support: Extract<LimitSupport, { enforced: true }>,
  run: RunCommand = runCommand,
): Promise<Array<{ slice: string; cgroupDir: string }>> {
  const listed = await run(support.tools.systemctl, ['list-units', '--all', '--plain', '--no-legend', '--type=slice', 'cloudjobs-jobs-*.slice']);
  if (listed.exitCode !== 0) throw new Error(`systemctl list-units failed: ${firstLine(listed.stderr)}`);
  return parseUnitList(listed.stdout)
    .filter((name) => /^cloudjobs-jobs-[0-9a-f]{18}\.slice$/.test(name))
    .map((slice) => ({ slice, cgroupDir: treeDir(support.layout, sliceCgroupPath(slice)) }));
}

/** Stops a slice without waiting (see INVARIANTS). */
export async function releaseSlice(support: Extract<LimitSupport, { enforced: true }>, slice: string, run: RunCommand = runCommand): Promise<void> {
  const stopped = await run(support.tools.systemctl, ['stop', '--no-block', slice]);
  if (stopped.exitCode !== 0) throw new Error(`systemctl stop ${slice} failed: ${firstLine(stopped.stderr)}`);
}

/** Unit names from `systemctl list-units --plain --no-legend` (the first word of each line). */
export function parseUnitList(text: string): string[] {
  return text
    .split('\n')
    .map((line) => line.trim().split(/\s+/)[0] ?? '')
    .filter((name) => name !== '');
}

/** The agent's service from /proc/self/cgroup text ("0::/system.slice/cloudjobs.service"); null outside one. */
export function parseAgentUnit(text: string): string | null {
  for (const line of text.split('\n')) {
    const match = /^(?:0::|\d+:name=systemd:)(\S*)$/.exec(line.trim());
    const unit = match?.[1]?.split('/').pop() ?? '';
    if (/^[\w@.:-]+\.service$/.test(unit)) return unit;
  }
  return null;
}

async function readAgentUnit(file: string): Promise<string | null> {
  return parseAgentUnit(await readFile(file, 'utf8').catch(() => ''));
}

function describeMissing(controller: string, layout: CgroupLayout): string {
  if (controller === 'memory' && layout.unified !== null && layout.legacy !== null) {
    return 'this system mounts cgroup v1 (hybrid), where systemd applies MemoryMax= only on cgroup v2; boot with systemd.unified_cgroup_hierarchy=1';
  }
  if (layout.legacy === null) {
    return `this cgroup v2 tree has no ${controller} controller (a container on a cgroup v1 host, or a kernel without it${controller === 'memory' ? '; on a Raspberry Pi add cgroup_enable=memory to cmdline.txt' : ''})`;
  }
  if (controller === 'memory') return 'the kernel has no memory controller (on a Raspberry Pi add cgroup_enable=memory to /boot/firmware/cmdline.txt)';
  return `the kernel has no ${controller} controller`;
}

// The job id is the server's text: only a plain one goes into the description.
function describeJobId(jobId: string): string {
  return /^[\w.:-]{1,64}$/.test(jobId) ? jobId : `(id sha256 ${createHash('sha256').update(jobId).digest('hex').slice(0, 16)})`;
}

function firstLine(text: string): string {
  return (text.trim().split('\n')[0] ?? '').slice(0, 300);
}

async function findTool(name: string): Promise<string | null> {
  for (const dir of SEARCH) {
    if (await isExecutableFile(`${dir}/${name}`)) return `${dir}/${name}`;
  }
  return null;
}

async function isDirectory(dir: string): Promise<boolean> {
  return (await stat(dir).catch(() => null))?.isDirectory() === true;
}

async function runCommand(file: string, args: string[]): Promise<{ exitCode: number; stdout: string; stderr: string }> {
  const result = await execa(file, args, {
    reject: false,
    stdin: 'ignore',
    timeout: COMMAND_TIMEOUT_MS,
    env: { LANG: 'C', SYSTEMD_PAGER: '', SYSTEMD_COLORS: '0' },
    extendEnv: false,
  });
  return { exitCode: result.exitCode ?? 1, stdout: String(result.stdout ?? ''), stderr: String(result.stderr ?? result.shortMessage ?? '') };
}
