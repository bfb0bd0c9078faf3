// Reads a unit's control group: which processes are in it and the kernel's
// counters (OOM kills, forks refused at pids.max, peak memory, CPU time).
// Read-only: the agent's unit has ProtectControlGroups=yes, and systemd, not
// the agent, writes the limits. Knows the three layouts systemd mounts:
// unified (cgroup v2 at /sys/fs/cgroup), hybrid (v1 controllers, the v2 tree
// at /sys/fs/cgroup/unified) and legacy (v1 only, the tree under .../systemd).
import { readdir, readFile, stat } from 'node:fs/promises';
import path from 'node:path';

/** Where the hierarchies are mounted. */
export interface CgroupLayout {
  /** The v2 tree (all of it, or systemd's unified tree of a hybrid system); null on a legacy system. */
  unified: string | null;
  /** The v1 controllers' root (hybrid and legacy); null on a unified system. */
  legacy: string | null;
  /** Controllers the v2 tree has (its root's cgroup.controllers); empty on hybrid systems. */
  controllers: ReadonlySet<string>;
}

/** The kernel's counters of a cgroup, each null when this kernel or layout lacks it. */
export interface CgroupCounters {
  /** Processes the OOM killer ended inside the cgroup (memory.events oom_kill). */
  oomKills: number | null;
  /** Forks refused because the cgroup reached pids.max (pids.events max). */
  pidsMaxHits: number | null;
  /** Highest memory use in bytes (memory.peak, kernel 5.19+; v1 max_usage_in_bytes). */
  memoryPeak: number | null;
  /** CPU time used, in microseconds (cpu.stat usage_usec; v1 cpuacct.usage). */
  cpuUsageUsec: number | null;
}

// A job's slice holds a scope per step and whatever those started: deeper trees
// (nested cgroups a root step made) are walked this far, pids at most this many.
const MAX_DEPTH = 8;
const MAX_PIDS = 65_536;
const MAX_FILE_BYTES = 64 * 1024;

/** Finds where the cgroup hierarchies are mounted under `root` (default /sys/fs/cgroup). */
export async function readCgroupLayout(root = '/sys/fs/cgroup'): Promise<CgroupLayout> {
  const top = await readSmall(path.join(root, 'cgroup.controllers'));
  if (top !== null) return { unified: root, legacy: null, controllers: new Set(top.split(/\s+/).filter(Boolean)) };
  const hybrid = await readSmall(path.join(root, 'unified', 'cgroup.controllers'));
  const unified = hybrid === null ? null : path.join(root, 'unified');
  return { unified, legacy: root, controllers: new Set((hybrid ?? '').split(/\s+/).filter(Boolean)) };
}

/** Whether `controller` (memory, pids, cpu) can limit a unit on this layout. */
export async function hasController(layout: CgroupLayout, controller: string): Promise<boolean> {
  if (layout.controllers.has(controller)) return true;
  if (layout.legacy === null) return false;
  // v1 mounts cpu and cpuacct together, with a symlink for each name
  const found = await stat(path.join(layout.legacy, controller)).catch(() => null);
  return found?.isDirectory() === true;
}

/** The directory that holds a unit's processes: `cgroupPath` is systemd's ControlGroup ("/a.slice/b.scope"). */
export function treeDir(layout: CgroupLayout, cgroupPath: string): string {
  return layout.unified !== null ? joinCgroup(layout.unified, cgroupPath) : joinCgroup(path.join(layout.legacy ?? '/sys/fs/cgroup', 'systemd'), cgroupPath);
}

/** Reads the counters of the cgroup at `cgroupPath` (v2 files first, then the v1 controllers'). */
export async function readCounters(layout: CgroupLayout, cgroupPath: string): Promise<CgroupCounters> {
  const v2 = (file: string): string | null => (layout.unified === null ? null : path.join(joinCgroup(layout.unified, cgroupPath), file));
  const v1 = (controller: string, file: string): string | null =>
    layout.legacy === null ? null : path.join(joinCgroup(path.join(layout.legacy, controller), cgroupPath), file);
  const [oomKills, pidsMaxHits, memoryPeak, cpuUsageUsec] = await Promise.all([
    firstOf([readKeyed(v2('memory.events'), 'oom_kill'), readKeyed(v1('memory', 'memory.oom_control'), 'oom_kill')]),
    // before Linux 6.10 a refused fork counts only in the forking task's own cgroup (the step's scope)
    firstOf([readTreeMax(v2('pids.events'), 'max'), readTreeMax(v1('pids', 'pids.events'), 'max')]),
    firstOf([readNumber(v2('memory.peak')), readNumber(v1('memory', 'memory.max_usage_in_bytes'))]),
    firstOf([readKeyed(v2('cpu.stat'), 'usage_usec'), readNumber(v1('cpuacct', 'cpuacct.usage')).then((ns) => (ns === null ? null : Math.round(ns / 1000)))]),
  ]);
  return { oomKills, pidsMaxHits, memoryPeak, cpuUsageUsec };
}

/** Pids of every process in the tree at `dir` (the cgroup and its children), bounded. */
export async function listCgroupPids(dir: string): Promise<number[]> {
  const pids: number[] = [];
  await walkTree(dir, async (at) => {
    const procs = await readSmall(path.join(at, 'cgroup.procs'));
    for (const line of (procs ?? '').split('\n')) {
      if (/^\d+$/.test(line) && pids.length < MAX_PIDS) pids.push(Number(line));
    }
  });
  return pids;
}

// Visits `dir` and the cgroups below it, MAX_DEPTH levels at most.
async function walkTree(dir: string, visit: (at: string) => Promise<void>): Promise<void> {
  const walk = async (at: string, depth: number): Promise<void> => {
    await visit(at);
    if (depth >= MAX_DEPTH) return;
    const entries = await readdir(at, { withFileTypes: true }).catch(() => []);
    for (const entry of entries) {
      if (entry.isDirectory()) await walk(path.join(at, entry.name), depth + 1);
    }
  };
  await walk(dir, 0);
}

// The largest `key` of the file `file` names in its cgroup and every cgroup below; null when none has it.
async function readTreeMax(file: string | null, key: string): Promise<number | null> {
  if (file === null) return null;
  let most: number | null = null;
  await walkTree(path.dirname(file), async (at) => {
    const value = await readKeyed(path.join(at, path.basename(file)), key);
    if (value !== null) most = Math.max(most ?? 0, value);
  });
  return most;
}

/** Whether any process is left in the tree at `dir` (v2's cgroup.events says so at once; else the pids are listed). */
export async function isPopulated(dir: string): Promise<boolean> {
  const events = await readSmall(path.join(dir, 'cgroup.events'));
  const populated = events === null ? null : parseKeyed(events, 'populated');
  if (populated !== null) return populated > 0;
  return (await listCgroupPids(dir)).length > 0;
}

/** The value of `key` in a flat-keyed file ("oom_kill 3" lines); null when absent. */
function parseKeyed(text: string, key: string): number | null {
  const match = new RegExp(`^${key} (\\d+)$`, 'm').exec(text);
  return match ? Number(match[1]) : null;
}

// systemd's ControlGroup is absolute ("/cloudjobs.slice/..."); never let it climb out of the mount.
function joinCgroup(mount: string, cgroupPath: string): string {
  const inside = path.posix.normalize(`/${cgroupPath}`);
  return path.join(mount, inside);
}

async function readKeyed(file: string | null, key: string): Promise<number | null> {
  const text = file === null ? null : await readSmall(file);
  return text === null ? null : parseKeyed(text, key);
}

async function readNumber(file: string | null): Promise<number | null> {
  const text = file === null ? null : await readSmall(file);
  const trimmed = text?.trim() ?? '';
  return /^\d+$/.test(trimmed) ? Number(trimmed) : null;
}

async function firstOf(reads: Promise<number | null>[]): Promise<number | null> {
  for (const value of await Promise.all(reads)) if (value !== null) return value;
  return null;
}

// cgroupfs files are small; a missing one (no such controller, the unit gone) reads as null.
async function readSmall(file: string): Promise<string | null> {
  try {
    const text = await readFile(file, 'utf8');
    return text.length > MAX_FILE_BYTES ? text.slice(0, MAX_FILE_BYTES) : text;
  } catch {
    return null;
  }
}
