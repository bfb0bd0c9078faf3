// Helpers shared by the polling, bad-answer, job-status and CLI e2e tests:
// one scope per test that owns every cloud, agent and temp dir it starts (and
// tears them all down), plus readers for what the agent logged and the cloud got.
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { expect } from 'vitest';
import { FINAL_STATUSES, type JobStatus, type StatusReport } from '../../src/contract/types.js';
import type { ReferenceCloud, ReferenceCloudOptions, PatchRecord } from '../cloud/reference-cloud.js';
import {
  createAgentDirs,
  removeDirs,
  startAgent,
  startCloudWithDevice,
  stopAgent,
  type AgentDirs,
  type AgentProcess,
  type IniSections,
  type TestDevice,
} from './harness.js';

/** Every field test/cloud/CONTRACT.md "Status update" says a status PATCH carries, every time. */
export const REPORT_FIELDS = ['status', 'exit_code', 'stdout', 'stderr', 'reason', 'executed_steps', 'failed_step', 'status_details'] as const;

/** A status PATCH body as the agent sends it: the contract's report, with the per-step details. */
export type ReportBody = StatusReport & { status_details: StatusReport['status_details'] & { steps: Record<string, unknown>[] } };

/** Owns what one test starts; `cleanup()` in afterEach stops and removes all of it. */
export interface E2eScope {
  /** A reference cloud with one registered device. */
  cloud(options?: ReferenceCloudOptions): Promise<{ cloud: ReferenceCloud; device: TestDevice }>;
  /** Temp dirs and agent.ini for an agent. */
  dirs(cloud: ReferenceCloud | null, device: TestDevice | null, ini?: IniSections): Promise<AgentDirs>;
  /** Starts `cloudjobs run` (debug logging) with extra env. */
  agent(dirs: AgentDirs, env?: Record<string, string>): AgentProcess;
  cleanup(): Promise<void>;
}

/** Creates an empty scope. */
export function createScope(): E2eScope {
  const clouds: ReferenceCloud[] = [];
  const dirList: AgentDirs[] = [];
  const agents: AgentProcess[] = [];
  return {
    async cloud(options) {
      const started = await startCloudWithDevice(options);
      clouds.push(started.cloud);
      return started;
    },
    async dirs(cloud, device, ini) {
      const dirs = await createAgentDirs(cloud, device, ini);
      dirList.push(dirs);
      return dirs;
    },
    agent(dirs, env = {}) {
      const agent = startAgent(dirs, { env });
      agents.push(agent);
      return agent;
    },
    async cleanup() {
      await Promise.all(agents.splice(0).map((a) => stopAgent(a, 10_000)));
      await Promise.all(clouds.splice(0).map((c) => c.close()));
      await Promise.all(dirList.splice(0).map((d) => removeDirs(d)));
    },
  };
}

/** Stops the agent with SIGTERM and asserts a clean exit 0 with nothing unhandled in its output. */
export async function expectCleanStop(agent: AgentProcess): Promise<string> {
  const result = await stopAgent(agent);
  const output = agent.output();
  expect(result, `agent exit\n${output.slice(-3000)}`).toEqual({ code: 0, signal: null });
  expect(output).not.toMatch(/unhandled|uncaught|TypeError|ReferenceError|RangeError|FATAL|\bat .*\.js:\d+/i);
  expect(output).toMatch(/INFO cloudjobs stopped/);
  return output;
}

/** The log lines of `output` at `level` (ERROR, WARN, INFO, DEBUG) whose text matches `pattern`. */
export function logLines(output: string, level: string, pattern: RegExp): string[] {
  return output
    .split('\n')
    .filter((line) => line.includes(` ${level} `))
    .filter((line) => pattern.test(line));
}

/** WARN and ERROR lines other than the expected warning about the short test poll interval. */
export function unexpectedWarnings(output: string): string[] {
  return output
    .split('\n')
    .filter((line) => / (WARN|ERROR) /.test(line))
    .filter((line) => !/ WARN polling\.interval is \d+ms \(set in /.test(line));
}

/** Parses a delay as the agent writes it ("850ms", "4s", "2m") into ms. */
export function parseLoggedDelay(text: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m)$/.exec(text);
  if (!m) throw new Error(`not a logged delay: ${text}`);
  const factor = m[2] === 'ms' ? 1 : m[2] === 's' ? 1000 : 60_000;
  return Number(m[1]) * factor;
}

/** The "retrying in X" delays of failed polls, in order, in ms. */
export function pollRetryDelays(output: string): number[] {
  return output
    .split('\n')
    .filter((line) => / (ERROR|WARN|DEBUG) polling for jobs failed/.test(line))
    .map((line) => {
      const m = /; retrying in (\d+(?:\.\d+)?(?:ms|s|m))\b/.exec(line);
      if (!m) throw new Error(`poll failure line without a delay: ${line}`);
      return parseLoggedDelay(m[1] as string);
    });
}

/** Asserts every PATCH the cloud got carries every test/cloud/CONTRACT.md field with the column's type. */
export function expectFullBodies(patches: readonly PatchRecord[]): ReportBody[] {
  return patches.map((patch) => {
    const body = patch.body as Record<string, unknown>;
    expect(body, `PATCH #${patch.seq} body`).not.toBeNull();
    expect(Object.keys(body).sort(), `PATCH #${patch.seq} fields`).toEqual([...REPORT_FIELDS].sort());
    expect(typeof body.status).toBe('string');
    expect(body.exit_code === null || Number.isInteger(body.exit_code), `exit_code ${String(body.exit_code)}`).toBe(true);
    expect(typeof body.stdout).toBe('string');
    expect(typeof body.stderr).toBe('string');
    expect(typeof body.reason).toBe('string');
    expect(Number.isInteger(body.executed_steps)).toBe(true);
    expect(body.failed_step === null || typeof body.failed_step === 'string').toBe(true);
    expect(typeof body.status_details === 'object' && body.status_details !== null && !Array.isArray(body.status_details)).toBe(true);
    return body as unknown as ReportBody;
  });
}

/**
 * Asserts the report sequence of one job: full bodies, IN_PROGRESS reports
 * first and exactly one final report, last. Returns the final body.
 */
export function expectOneFinal(patches: readonly PatchRecord[], status: string): ReportBody {
  const bodies = expectFullBodies(patches);
  const statuses = bodies.map((b) => b.status);
  const finals = statuses.filter((s) => FINAL_STATUSES.has(s as JobStatus));
  expect(finals, `statuses ${statuses.join(',')}`).toEqual([status]);
  expect(statuses[statuses.length - 1]).toBe(status);
  expect(statuses.slice(0, -1).every((s) => s === 'IN_PROGRESS'), `statuses ${statuses.join(',')}`).toBe(true);
  return bodies[bodies.length - 1] as ReportBody;
}

/** Reads the status file the running agent keeps under runtime_dir. */
export async function readStatusFile(dirs: AgentDirs): Promise<Record<string, unknown> | null> {
  try {
    return JSON.parse(await readFile(path.join(dirs.runtimeDir, 'status.json'), 'utf8')) as Record<string, unknown>;
  } catch {
    return null;
  }
}

/** The route counts the cloud saw for the job routes of both generations. */
export function jobRouteCounts(cloud: ReferenceCloud): Record<string, number> {
  const counts = cloud.requestCounts();
  return Object.fromEntries(Object.entries(counts).filter(([route]) => /jobs/.test(route) || route === 'unknown'));
}
