// Runs the built executable against the reference cloud: a temp directory per
// agent with its own agent.ini, state and runtime dirs, and helpers to wait
// for what the cloud received or the agent logged.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { startReferenceCloud, type ReferenceCloud, type ReferenceCloudOptions } from '../cloud/reference-cloud.js';
import { waitFor } from '../cloud/wait-for.js';

export { waitFor };

/** The executable under test (make builds it before the e2e suite runs). */
export const AGENT_BIN = path.resolve(process.env.CLOUDJOBS_BIN ?? 'build/cloudjobs');

/** The user job steps run as in these tests. */
export const RUN_USER = process.getuid?.() === 0 ? 'nobody' : os.userInfo().username;

/** A device known to a reference cloud. */
export interface TestDevice {
  uuid: string;
  apiKey: string;
}

/** Starts a reference cloud with one registered device. */
export async function startCloudWithDevice(
  options: ReferenceCloudOptions = {},
): Promise<{ cloud: ReferenceCloud; device: TestDevice }> {
  const device = { uuid: randomUUID(), apiKey: randomBytes(32).toString('hex') };
  const cloud = await startReferenceCloud({ ...options, devices: [{ uuid: device.uuid, apiKey: device.apiKey }, ...(options.devices ?? [])] });
  return { cloud, device };
}

/** INI sections as objects: { polling: { interval: '200ms' } }. */
export type IniSections = Record<string, Record<string, string>>;

/** Renders sections as agent.ini text. */
export function renderIni(sections: IniSections): string {
  return Object.entries(sections)
    .map(([section, keys]) => `[${section}]\n${Object.entries(keys).map(([k, v]) => `${k} = ${v}`).join('\n')}\n`)
    .join('\n');
}

/** A temp directory laid out like an installed agent. */
export interface AgentDirs {
  root: string;
  configFile: string;
  stateDir: string;
  runtimeDir: string;
  workDir: string;
}

/** Creates the directories and agent.ini for one agent. */
export async function createAgentDirs(cloud: ReferenceCloud | null, device: TestDevice | null, ini: IniSections = {}): Promise<AgentDirs> {
  const root = await mkdtemp(path.join(os.tmpdir(), 'cloudjobs-e2e-'));
  // The job user must be able to reach its working directory below this one.
  await chmod(root, 0o755);
  const dirs: AgentDirs = {
    root,
    configFile: path.join(root, 'agent.ini'),
    stateDir: path.join(root, 'state'),
    runtimeDir: path.join(root, 'run'),
    workDir: path.join(root, 'work'),
  };
  const base: IniSections = {
    cloud: cloud ? { api_url: cloud.url } : {},
    device: device ? { uuid: device.uuid, supervisor_url: '' } : { supervisor_url: '' },
    polling: { interval: '200ms', max_backoff: '2s' },
    // hold_dir: this agent's own (absent) directory, never the host's /run/cloudjobs-holds
    // no resource limits by default: this host has no systemd to enforce them, and the
    // warning that says so is tested once (limits-without-systemd.test.ts)
    jobs: {
      run_as_user: RUN_USER, work_dir: dirs.workDir, kill_grace: '500ms', progress_interval: '1s', hold_dir: path.join(root, 'holds'),
      memory_max: '0B', tasks_max: '0', cpu_quota: '0%',
    },
    agent: { state_dir: dirs.stateDir, runtime_dir: dirs.runtimeDir, drain_timeout: '10s' },
    logging: { level: 'debug' },
  };
  if (device) base.cloud = { ...base.cloud, api_key_file: path.join(root, 'api-key') };
  for (const [section, keys] of Object.entries(ini)) base[section] = { ...base[section], ...keys };
  await writeFile(dirs.configFile, renderIni(base), { mode: 0o600 });
  if (device) await writeFile(path.join(root, 'api-key'), `${device.apiKey}\n`, { mode: 0o600 });
  return dirs;
}

/** A running agent process. */
export interface AgentProcess {
  child: ChildProcess;
  dirs: AgentDirs;
  /** Everything written to stdout and stderr so far. */
  output(): string;
  /** Resolves when the output matches `pattern`. */
  waitForOutput(pattern: RegExp, timeoutMs?: number): Promise<void>;
  /** Resolves with the exit code or signal. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Sends a signal. */
  kill(signal: NodeJS.Signals): void;
}

/** Starts `cloudjobs run` (or another command) with the given dirs and extra env. */
export function startAgent(
  dirs: AgentDirs,
  options: {
    args?: string[];
    env?: Record<string, string>;
    /** e.g. setpriv --no-new-privs -- (execs the agent) */
    prefix?: string[];
    /** Written to standard input, which is then closed (default: no standard input). */
    input?: string;
  } = {},
): AgentProcess {
  const args = options.args ?? ['--config', dirs.configFile, 'run'];
  const [command, ...argv] = [...(options.prefix ?? []), AGENT_BIN, ...args];
  const child = spawn(command!, argv, {
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', LANG: 'C.UTF-8', ...options.env },
    stdio: [options.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
  });
  if (options.input !== undefined) child.stdin?.end(options.input);
  let text = '';
  child.stdout?.on('data', (chunk: Buffer) => (text += chunk.toString('utf8')));
  child.stderr?.on('data', (chunk: Buffer) => (text += chunk.toString('utf8')));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on('exit', (code, signal) => resolve({ code, signal })),
  );
  return {
    child,
    dirs,
    output: () => text,
    waitForOutput: async (pattern, timeoutMs = 20_000) => {
      try {
        await waitFor(() => pattern.test(text), timeoutMs, `agent output matching ${pattern}`);
      } catch (error) {
        // say what the agent did print: the output at the time of failure, not at the call
        throw new Error(`${(error as Error).message}\n--- agent output so far ---\n${text.slice(-4000)}`);
      }
    },
    exited,
    kill: (signal) => {
      child.kill(signal);
    },
  };
}

/** Runs a command of the executable to completion. */
export async function runCommand(
  args: string[],
  options: { env?: Record<string, string>; input?: string } = {},
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(AGENT_BIN, args, {
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', LANG: 'C.UTF-8', ...options.env },
    stdio: [options.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
  });
  if (options.input !== undefined) child.stdin?.end(options.input);
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (chunk: Buffer) => (stdout += chunk.toString('utf8')));
  child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
  const code = await new Promise<number | null>((resolve) => child.on('exit', (c) => resolve(c)));
  return { code, stdout, stderr };
}

/** Stops an agent with SIGTERM and waits for it; SIGKILL if it does not stop in time. */
export async function stopAgent(agent: AgentProcess, timeoutMs = 20_000): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  if (agent.child.exitCode !== null || agent.child.signalCode !== null) return agent.exited;
  agent.kill('SIGTERM');
  const timer = setTimeout(() => agent.kill('SIGKILL'), timeoutMs);
  try {
    return await agent.exited;
  } finally {
    clearTimeout(timer);
  }
}

/** Removes an agent's directories. */
export async function removeDirs(dirs: AgentDirs): Promise<void> {
  await rm(dirs.root, { recursive: true, force: true });
}

/** A job document of runCommand steps given as argv arrays. */
export function commandJob(...commands: string[][]): Record<string, unknown> {
  return {
    version: '1.0',
    includeStdOut: true,
    steps: commands.map((argv, i) => ({ action: { name: `step ${i + 1}`, type: 'runCommand', input: { command: argv } } })),
  };
}
