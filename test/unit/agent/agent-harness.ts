// The agent over the real journal, outbox, history and job engine (real
// fixture scripts), with a scripted cloud: the one copy agent.test.ts and
// boundary.test.ts build their agents from.
import os from 'node:os';
import path from 'node:path';
import { Agent } from '../../../src/agent/agent.js';
import type { AgentDeps } from '../../../src/agent/ports.js';
import { createEngine } from '../../../src/agent/engine-adapter.js';
import { createSystemClock } from '../../../src/clock/clock.js';
import { createPollScheduler, createRetryBackoff } from '../../../src/cloud/backoff.js';
import type { CloudClient, PollAnswer, StatusOutcome } from '../../../src/cloud/client.js';
import type { JobOffer, StatusReport } from '../../../src/contract/types.js';
import { lookupUser } from '../../../src/jobs/users.js';
import type { Log } from '../../../src/log/log.js';
import { openHistory, type History } from '../../../src/state/history.js';
import { openJournal, type Journal } from '../../../src/state/journal.js';
import { openOutbox, type Outbox } from '../../../src/state/outbox.js';

export const SCRIPTS = path.resolve('test/fixtures/scripts');
export const RUN_USER = process.getuid?.() === 0 ? 'nobody' : os.userInfo().username;

/** A report the scripted cloud took. */
export interface Sent {
  jobId: string;
  report: StatusReport;
}

/** The scripted cloud. */
export type ScriptedCloud = ReturnType<typeof createScriptedCloud>;

/** A cloud that hands out queued offers and records every report; `answer` decides each report's fate. */
export function createScriptedCloud() {
  const offers: JobOffer[] = [];
  const sent: Sent[] = [];
  let polls = 0;
  const cloud = {
    offers,
    sent,
    polls: () => polls,
    answer: (_jobId: string, _report: StatusReport, _attempt: number): StatusOutcome | Error => 'accepted',
    attempts: new Map<string, number>(),
    client: null as unknown as CloudClient,
  };
  cloud.client = {
    async nextJob(): Promise<PollAnswer> {
      polls += 1;
      const offer = offers.shift();
      return offer ? { kind: 'job', offer } : { kind: 'none' };
    },
    async sendStatus(jobId, report) {
      const key = `${jobId}:${report.status}`;
      const attempt = (cloud.attempts.get(key) ?? 0) + 1;
      cloud.attempts.set(key, attempt);
      const outcome = cloud.answer(jobId, report, attempt);
      if (outcome instanceof Error) throw outcome;
      sent.push({ jobId, report });
      return outcome;
    },
    generation: () => 'devices',
  };
  return cloud;
}

/** An offer of `steps` (each made with step()). */
export function offerOf(jobId: string, steps: unknown[], timeoutSeconds: number | null = 30): JobOffer {
  return { jobId, jobName: `job ${jobId}`, timeoutSeconds, createdAt: null, document: { version: '1.0', includeStdOut: true, steps } };
}

/** A runCommand step. */
export function step(name: string, command: string[]): unknown {
  return { action: { name, type: 'runCommand', input: { command } } };
}

/** The reports of `jobId` other than IN_PROGRESS. */
export function finals(sent: Sent[], jobId: string): Sent[] {
  return sent.filter((s) => s.jobId === jobId && s.report.status !== 'IN_PROGRESS');
}

/** The real engine, with work dirs under `dir`. */
export function createTestEngine(dir: string, log: Log, jobs: { kill_grace?: number } = {}): AgentDeps['engine'] {
  return createEngine({
    jobs: {
      enabled: true,
      run_as_user: RUN_USER,
      allowed_users: [],
      handler_dirs: [],
      work_dir: path.join(dir, 'work'),
      default_timeout: 60_000,
      kill_grace: jobs.kill_grace ?? 200,
      max_output: 65_536,
      progress_interval: 100,
      max_parallel: 2,
      path: '/usr/sbin:/usr/bin:/sbin:/bin',
      max_reboots: 3,
      reboot_timeout: 600_000,
      reboot_command: 'systemctl reboot',
      maintenance_windows: [],
      hold_dir: '',
      memory_max: 0,
      tasks_max: 0,
      cpu_quota: 0,
      reboot_users: [],
    },
    agentVersion: '9.9.9-test',
    clock: createSystemClock(),
    log,
    lookupUser,
    agentUid: process.getuid?.() ?? 0,
  });
}

/** The real stores under `stateDir`. */
export interface Stores {
  journal: Journal;
  outbox: Outbox;
  history: History;
}

/** Opens the journal, outbox and history under `stateDir`. */
export async function openStores(stateDir: string, log: Log): Promise<Stores> {
  const clock = createSystemClock();
  const [journal, outbox, history] = await Promise.all([
    openJournal({ stateDir, log, clock }),
    openOutbox({ stateDir, maxReports: 100, maxBytes: 1 << 24, log, clock }),
    openHistory({ stateDir, size: 10, log, clock }),
  ]);
  return { journal, outbox, history };
}

/** A reboot port that refuses to reboot. */
export const NO_REBOOTS: AgentDeps['reboot'] = {
  currentBoot: async () => ({ bootId: 'boot-1', marker: 'marker-1' }),
  requestReboot: async () => {
    throw new Error('no reboots in these tests');
  },
  maxReboots: 3,
  rebootUsers: [],
  rebootTimeoutMs: 600_000,
  commandText: 'none',
};

/** What an agent of the tests is built from. */
export interface AgentOptions {
  dir: string;
  cloud: ScriptedCloud;
  stores: Stores;
  log: Log;
  overrides?: Partial<AgentDeps>;
}

/** An agent on `dir` with the scripted cloud, fast intervals, and `overrides`. */
export function buildAgent(options: AgentOptions): Agent {
  return new Agent(agentDeps(options));
}

/** The deps buildAgent uses. */
export function agentDeps(options: AgentOptions): AgentDeps {
  const { dir, cloud, stores, log } = options;
  const random = () => 0.5;
  return {
    clock: createSystemClock(),
    log,
    cloud: cloud.client,
    scheduler: createPollScheduler({ intervalMs: 20, jitter: 0, maxBackoffMs: 1000, random }),
    deliveryRetry: createRetryBackoff({ maxBackoffMs: 50, random }),
    journal: stores.journal,
    outbox: stores.outbox,
    history: stores.history,
    engine: createTestEngine(dir, log),
    reboot: NO_REBOOTS,
    notifier: { ready() {}, status() {}, stopping() {} },
    writeStatus: async () => undefined,
    version: '9.9.9-test',
    identitySource: 'test',
    pid: 1234,
    disabledReason: null,
    longestPollWaitMs: 20,
    recheckIntervalMs: 20,
    requestTimeoutMs: 1000,
    progressIntervalMs: 100,
    drainTimeoutMs: 10_000,
    flushTimeoutMs: 2000,
    ...options.overrides,
  };
}
