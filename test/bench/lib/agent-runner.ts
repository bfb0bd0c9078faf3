// Starts `cloudjobs run` for a benchmark: its own reference cloud (in this
// process), device, temp directories and agent.ini, with output going to a
// log file so the harness spends no CPU reading it.
import { spawn, type ChildProcess } from 'node:child_process';
import { openSync, closeSync, existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { createAgentDirs, removeDirs, startCloudWithDevice, type AgentDirs, type IniSections, type TestDevice } from '../../e2e/harness.js';
import type { ReferenceCloud } from '../../cloud/reference-cloud.js';
import type { BenchTarget } from './bench-target.js';

/** A reference cloud, one device and the directories of one agent. */
export interface BenchSetup {
  cloud: ReferenceCloud;
  device: TestDevice;
  dirs: AgentDirs;
  /** GET .../jobs/next requests the cloud has answered so far. */
  polls(): number;
  close(): Promise<void>;
}

/** Settings every benchmark agent shares: defaults but for quiet logs. */
const BASE_INI: IniSections = {
  logging: { level: 'info' },
  jobs: { progress_interval: '10s' },
};

/** Starts a reference cloud with one device and writes an agent.ini with `ini` over the base settings. */
export async function createBenchSetup(ini: IniSections): Promise<BenchSetup> {
  const { cloud, device } = await startCloudWithDevice();
  // runtime_dir on a tmpfs, as under the unit (RuntimeDirectory= is /run/cloudjobs): the status
  // file is rewritten with every step, which on a disk file system costs a rename that flushes data
  const runtimeDir = await mkdtemp(path.join(existsSync('/dev/shm') ? '/dev/shm' : os.tmpdir(), 'cloudjobs-bench-run-'));
  const merged: IniSections = { ...BASE_INI, agent: { runtime_dir: runtimeDir } };
  for (const [section, keys] of Object.entries(ini)) merged[section] = { ...merged[section], ...keys };
  const dirs = { ...(await createAgentDirs(cloud, device, merged)), runtimeDir };
  return {
    cloud,
    device,
    dirs,
    polls: () => cloud.requestCounts()['GET /devices/:uuid/jobs/next'] ?? 0,
    async close() {
      await cloud.close();
      await removeDirs(dirs);
      await rm(runtimeDir, { recursive: true, force: true });
    },
  };
}

/** A running agent process. */
export interface BenchAgent {
  pid: number;
  child: ChildProcess;
  /** Resolves when the process has exited. */
  exited: Promise<void>;
  /** What the agent logged so far. */
  log(): string;
  /** Throws, with the end of its log, when the agent is no longer running. */
  assertAlive(): void;
  /** SIGTERM, then SIGKILL after 20 s; resolves once it exited. */
  stop(): Promise<void>;
}

/** The prefix that gives the agent what systemd gives it under the shipped unit: no_new_privs. */
const AS_THE_UNIT = ['setpriv', '--no-new-privs', '--'];

/** Starts `cloudjobs --config ... run` of `target` with extra environment, with no_new_privs as under the unit. */
export function startBenchAgent(target: BenchTarget, dirs: AgentDirs, env: Record<string, string> = {}): BenchAgent {
  const logFile = path.join(dirs.root, 'agent.log');
  const fd = openSync(logFile, 'a');
  // For profiling only (the figures then measure the wrapper, not the agent):
  // BENCH_AGENT_WRAP="strace -f -o /tmp/t" prefixes the executable (stopping strace
  // detaches it and leaves the agent running: `pkill -f 'cloudjobs run'` afterwards);
  // BENCH_AGENT_CMD="node --cpu-prof build/bundle/x64/cloudjobs.cjs" replaces it.
  const wrap = process.env.BENCH_AGENT_WRAP ? process.env.BENCH_AGENT_WRAP.split(' ') : [];
  const agentArgv = process.env.BENCH_AGENT_CMD ? process.env.BENCH_AGENT_CMD.split(' ') : [...wrap, ...target.agent];
  // As systemd starts it (the unit's NoNewPrivileges=yes): setpriv sets no_new_privs and execs the agent, same pid.
  const [command, ...prefix] = [...AS_THE_UNIT, ...agentArgv];
  const child = spawn(command!, [...prefix, '--config', dirs.configFile, 'run'], {
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', LANG: 'C.UTF-8', ...env },
    stdio: ['ignore', fd, fd],
  });
  closeSync(fd);
  let spawnError: Error | null = null;
  const exited = new Promise<void>((resolve) => {
    child.once('exit', () => resolve());
    child.once('error', (error) => {
      spawnError = error;
      resolve();
    });
  });
  return {
    pid: child.pid ?? -1,
    child,
    exited,
    log: () => (spawnError ? `could not start ${command}: ${spawnError.message}\n` : '') + readFileSync(logFile, 'utf8'),
    assertAlive() {
      if (spawnError || child.exitCode !== null || child.signalCode !== null) {
        const text = this.log().trim().split('\n').slice(-3).join(' | ');
        throw new Error(`the agent exited (${spawnError ? 'not started' : String(child.exitCode ?? child.signalCode)}): ${text}`);
      }
    },
    async stop() {
      if (spawnError || child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
      await exited;
      clearTimeout(timer);
    },
  };
}

/** Spawns `argv` with output discarded; resolves with its stdout once it exits 0. */
export function runToEnd(argv: string[], env: Record<string, string> = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(argv[0]!, argv.slice(1), { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.once('error', reject);
    child.once('close', (code) =>
      code === 0 ? resolve(stdout) : reject(new Error(`${argv.join(' ')} exited with ${code}: ${stderr.trim().slice(-500)}`)),
    );
  });
}

/** Resolves once `predicate()` is true, checking every `everyMs`; rejects after `timeoutMs` naming `what`. */
export async function waitUntil(predicate: () => boolean, timeoutMs: number, what: string, everyMs = 5): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, everyMs));
  }
}

/** Milliseconds since the epoch with sub-ms precision. */
export function preciseNow(): number {
  return performance.timeOrigin + performance.now();
}

/** Resolves after `ms`. */
export function pause(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
