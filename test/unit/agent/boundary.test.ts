// The agent's error boundary over the real journal, outbox, history and engine,
// with faults injected into the stores: a full or read-only state directory
// degrades the agent (no job lost, no job run twice, every final delivered), a
// bug or a dead loop makes run() reject with LoopDiedError (exit 70).
import { chmod, mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Agent, type AgentDeps, type LoopName } from '../../../src/agent/agent.js';
import { createEngine } from '../../../src/agent/engine-adapter.js';
import { createSystemClock } from '../../../src/clock/clock.js';
import { createPollScheduler, createRetryBackoff } from '../../../src/cloud/backoff.js';
import type { CloudClient, PollAnswer } from '../../../src/cloud/client.js';
import type { JobOffer, StatusReport } from '../../../src/contract/types.js';
import { LoopDiedError, StateIoError, type LocalFault } from '../../../src/errors/errors.js';
import { lookupUser } from '../../../src/jobs/users.js';
import { openHistory, type History } from '../../../src/state/history.js';
import { openJournal, type Journal } from '../../../src/state/journal.js';
import { openOutbox, type Outbox } from '../../../src/state/outbox.js';
import { waitFor } from '../../cloud/wait-for.js';
import { createCaptureLog } from '../cloud/capture-log.js';

const SCRIPTS = path.resolve('test/fixtures/scripts');
const RUN_USER = process.getuid?.() === 0 ? 'nobody' : os.userInfo().username;

interface Sent {
  jobId: string;
  report: StatusReport;
}

function createCloud() {
  const offers: JobOffer[] = [];
  const sent: Sent[] = [];
  let polls = 0;
  const client: CloudClient = {
    async nextJob(): Promise<PollAnswer> {
      polls += 1;
      const offer = offers.shift();
      return offer ? { kind: 'job', offer } : { kind: 'none' };
    },
    async sendStatus(jobId, report) {
      sent.push({ jobId, report });
      return 'accepted';
    },
    generation: () => 'devices',
  } as CloudClient;
  return { offers, sent, client, polls: () => polls };
}

function offerOf(jobId: string, steps: unknown[]): JobOffer {
  return { jobId, jobName: `job ${jobId}`, timeoutSeconds: 30, createdAt: null, document: { version: '1.0', includeStdOut: true, steps } };
}

function step(name: string, command: string[]): unknown {
  return { action: { name, type: 'runCommand', input: { command } } };
}

const finals = (sent: Sent[], jobId: string) => sent.filter((s) => s.jobId === jobId && s.report.status !== 'IN_PROGRESS');

// The error a full disk gives the stores (what describeIoError makes of ENOSPC).
function enospc(file: string): StateIoError {
  const cause = Object.assign(new Error(`ENOSPC: no space left on device, open '${file}'`), { code: 'ENOSPC', path: file });
  return new StateIoError(file, `could not write ${file} (${cause.message})`, { cause });
}

// Wraps a store so that the named methods throw `fault()` while `disk.full` is true.
function failing<T extends object>(store: T, disk: { full: boolean }, methods: (keyof T)[], fault: () => Error): T {
  return new Proxy(store, {
    get(target, key, receiver) {
      const value = Reflect.get(target, key, receiver) as unknown;
      if (typeof value !== 'function') return value;
      return (...args: unknown[]) => {
        if (disk.full && methods.includes(key as keyof T)) return Promise.reject(fault());
        return (value as (...a: unknown[]) => unknown).apply(target, args);
      };
    },
  });
}

describe('Agent error boundary', () => {
  let dir: string;
  let stateDir: string;
  let logs: ReturnType<typeof createCaptureLog>;

  beforeEach(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'cloudjobs-boundary-'));
    await chmod(dir, 0o1777); // sticky: work_dir sits below it (work-dir.ts refuses a parent others can swap)
    stateDir = path.join(dir, 'state');
    logs = createCaptureLog();
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  async function stores() {
    const clock = createSystemClock();
    const log = logs;
    const [journal, outbox, history] = await Promise.all([
      openJournal({ stateDir, log, clock }),
      openOutbox({ stateDir, maxReports: 100, maxBytes: 1 << 24, log, clock }),
      openHistory({ stateDir, size: 10, log, clock }),
    ]);
    return { journal, outbox, history, clock, log };
  }

  function build(
    cloud: ReturnType<typeof createCloud>,
    s: { journal: Journal; outbox: Outbox; history: History } & Awaited<ReturnType<typeof stores>>,
    overrides: Partial<AgentDeps> = {},
  ): Agent {
    const random = () => 0.5;
    const { clock, log } = s;
    return new Agent({
      clock,
      log,
      cloud: cloud.client,
      scheduler: createPollScheduler({ intervalMs: 20, jitter: 0, maxBackoffMs: 1000, random }),
      deliveryRetry: createRetryBackoff({ maxBackoffMs: 50, random }),
      journal: s.journal,
      outbox: s.outbox,
      history: s.history,
      engine: createEngine({
        jobs: {
          enabled: true,
          run_as_user: RUN_USER,
          allowed_users: [],
          handler_dirs: [],
          work_dir: path.join(dir, 'work'),
          default_timeout: 60_000,
          kill_grace: 200,
          max_output: 65_536,
          progress_interval: 50,
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
        clock,
        log,
        lookupUser,
        agentUid: process.getuid?.() ?? 0,
      }),
      reboot: {
        currentBoot: async () => ({ bootId: 'boot-1', marker: 'marker-1' }),
        requestReboot: async () => {
          throw new Error('no reboots in these tests');
        },
        maxReboots: 3,
        rebootUsers: [],
        rebootTimeoutMs: 600_000,
        commandText: 'none',
      },
      notifier: { ready() {}, status() {}, stopping() {} },
      writeStatus: async () => undefined,
      version: '9.9.9-test',
      identitySource: 'test',
      pid: 1234,
      disabledReason: null,
      pollIntervalMs: 20,
      requestTimeoutMs: 1000,
      progressIntervalMs: 50,
      drainTimeoutMs: 10_000,
      flushTimeoutMs: 2000,
      ...overrides,
    });
  }

  const messages = () => logs.entries.map((r) => r.message);

  it('a final report the disk cannot take is sent directly, stored when the disk recovers, and the job is not reported interrupted', async () => {
    const disk = { full: false };
    const s = await stores();
    const journal = failing(s.journal, disk, ['recordFinal', 'recordStep'], () => enospc(`${stateDir}/journal/x.json`));
    const outbox = failing(s.outbox, disk, ['enqueue'], () => enospc(`${stateDir}/outbox/1.json`));
    const cloud = createCloud();
    const marks = path.join(dir, 'marks');
    // the step fills the disk as it ends; the second step must not start
    cloud.offers.push(
      offerOf('j1', [step('fill', ['sh', '-c', `echo one >> ${marks}; sleep 1`]), step('never', [path.join(SCRIPTS, 'mark.sh'), marks, 'two'])]),
    );
    let probes = 0;
    const agent = build(cloud, { ...s, journal, outbox }, {
      probeState: async (): Promise<LocalFault | null> => {
        probes += 1;
        return disk.full ? { path: stateDir, errno: 'ENOSPC', message: `${stateDir}: ENOSPC: no space left on device` } : null;
      },
    });
    const running = agent.run();
    await waitFor(() => cloud.sent.some((x) => x.jobId === 'j1'), 20_000, 'the first progress report');
    disk.full = true;
    await waitFor(() => finals(cloud.sent, 'j1').length === 1, 20_000, 'the final sent directly');
    const final = finals(cloud.sent, 'j1')[0]!.report;
    expect(final.status).toBe('FAILED');
    expect(final.reason).toMatch(
      /^the agent cannot write its state \(\/.*\/state\/(journal|outbox)\/\w+\.json: ENOSPC: no space left on device\), so it started no further step; 1 of 2 steps ran, the rest were not started$/,
    );
    expect(final.status_details.local_fault).toMatch(/ENOSPC: no space left on device$/);
    expect(agent.getStatus().state).toBe('degraded');
    expect(agent.getStatus().degraded).toBe(`${stateDir}: ENOSPC: no space left on device`);
    expect(agent.describe()).toMatch(/^degraded: .*: ENOSPC: no space left on device; taking no new job/);
    expect(agent.isHealthy()).toBe(true);
    const pollsWhileDegraded = cloud.polls();
    cloud.offers.push(offerOf('j2', [step('two', ['true'])]));
    await waitFor(() => probes >= 3, 5000, 'probes while degraded');
    expect(cloud.polls()).toBe(pollsWhileDegraded);

    disk.full = false;
    await waitFor(() => finals(cloud.sent, 'j2').length === 1, 20_000, 'the next job after recovery');
    agent.stop();
    await running;
    expect(finals(cloud.sent, 'j1')).toHaveLength(1);
    expect((await readFile(marks, 'utf8')).trim().split('\n')).toEqual(['one']);
    expect((await s.history.list(5)).map((h) => [h.jobId, h.report.status])).toEqual([['j2', 'SUCCEEDED'], ['j1', 'FAILED']]);
    expect(s.journal.list()).toEqual([]);
    expect(messages().some((m) => m.startsWith('polling for jobs failed'))).toBe(false);
    expect(messages()).toContain(`state directory writable again (was: ${stateDir}: ENOSPC: no space left on device); back to normal`);
  });

  it('does not poll while checkState finds state_dir read-only, and polls again once it is writable', async () => {
    const s = await stores();
    const cloud = createCloud();
    let readOnly = true;
    const fault = { path: stateDir, errno: 'EROFS', message: `${stateDir}: EROFS: read-only file system` };
    const agent = build(cloud, s, {
      checkState: async () => (readOnly ? fault : null),
      probeState: async () => (readOnly ? fault : null),
    });
    cloud.offers.push(offerOf('ro', [step('ok', ['true'])]));
    const running = agent.run();
    await waitFor(() => agent.getStatus().state === 'degraded', 5000, 'degraded');
    expect(cloud.polls()).toBe(0);
    expect(agent.describe()).toContain(`degraded: ${stateDir}: EROFS: read-only file system; taking no new job`);
    readOnly = false;
    await waitFor(() => finals(cloud.sent, 'ro').length === 1, 20_000, 'the job after recovery');
    agent.stop();
    await running;
    expect(finals(cloud.sent, 'ro')[0]!.report.status).toBe('SUCCEEDED');
  });

  it('a job that cannot be journaled is not run: FAILED "not started", sent directly, in history after recovery', async () => {
    const disk = { full: true };
    const s = await stores();
    const journal = failing(s.journal, disk, ['begin'], () => enospc(`${stateDir}/journal/new.json`));
    const outbox = failing(s.outbox, disk, ['enqueue'], () => enospc(`${stateDir}/outbox/1.json`));
    const cloud = createCloud();
    const marks = path.join(dir, 'marks');
    cloud.offers.push(offerOf('nj', [step('mark', [path.join(SCRIPTS, 'mark.sh'), marks, 'ran'])]));
    const agent = build(cloud, { ...s, journal, outbox }, {
      probeState: async () => (disk.full ? { path: stateDir, errno: 'ENOSPC', message: `${stateDir}: ENOSPC: no space left on device` } : null),
    });
    const running = agent.run();
    await waitFor(() => finals(cloud.sent, 'nj').length === 1, 20_000, 'the not-started report');
    expect(finals(cloud.sent, 'nj')[0]!.report).toMatchObject({
      status: 'FAILED',
      executed_steps: 0,
      reason: `not started: the agent could not journal the job (${stateDir}/journal/new.json: ENOSPC: no space left on device); nothing ran`,
    });
    disk.full = false;
    await waitFor(async () => (await s.history.list(5)).length === 1, 20_000, 'history after recovery');
    agent.stop();
    await running;
    expect(finals(cloud.sent, 'nj')).toHaveLength(1);
    await expect(readFile(marks, 'utf8')).rejects.toThrow(/ENOENT/);
  });

  it('a status file that cannot be written is named in STATUS= and the journal, and the agent goes on', async () => {
    const s = await stores();
    const cloud = createCloud();
    const statuses: string[] = [];
    const file = path.join(dir, 'run', 'status.json');
    const agent = build(cloud, s, {
      writeStatus: async () => {
        throw Object.assign(new Error(`EROFS: read-only file system, open '${file}'`), { code: 'EROFS', path: file });
      },
      notifier: { ready() {}, status: (text) => void statuses.push(text), stopping() {} },
    });
    cloud.offers.push(offerOf('st', [step('ok', ['true'])]));
    const running = agent.run();
    await waitFor(() => finals(cloud.sent, 'st').length === 1, 20_000, 'the job despite the status file');
    await waitFor(() => statuses.some((t) => t.endsWith(`; cannot write the status file: ${file}: EROFS: read-only file system`)), 5000, 'STATUS= naming it');
    agent.stop();
    await running;
    expect(logs.entries.filter((e) => e.message === `could not write the status file: ${file}: EROFS: read-only file system`)).toHaveLength(1);
    expect(agent.isHealthy()).toBe(true);
  });

  it('a bug while handling a job kills the poll loop: run() rejects, the health check fails', async () => {
    const s = await stores();
    const cloud = createCloud();
    const history = failing(s.history, { full: true }, ['add'], () => new TypeError('cannot read properties of undefined'));
    cloud.offers.push(offerOf('bug', [step('ok', ['true'])]));
    const agent = build(cloud, { ...s, history });
    const error = await agent.run().then(
      () => null,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(LoopDiedError);
    expect((error as LoopDiedError).loop).toBe('poll');
    expect((error as LoopDiedError).message).toBe('the poll loop died: cannot read properties of undefined');
    expect(agent.isHealthy()).toBe(false);
    expect(agent.describe()).toBe('failed: the poll loop died: cannot read properties of undefined; exiting to be restarted');
  });

  it.each<LoopName>(['delivery', 'poll', 'status writer'])('the %s loop dying makes run() reject', async (loop) => {
    const s = await stores();
    const cloud = createCloud();
    // one death at a fixed time, as run-command makes it: a loop that exists then dies
    const death = new Promise<never>((_, reject) => setTimeout(() => reject(new Error('injected')), 50));
    death.catch(() => undefined);
    const agent = build(cloud, s, { injectLoopDeath: (name) => (name === loop ? death : null) });
    await expect(agent.run()).rejects.toThrow(`the ${loop} loop died: injected`);
    expect(agent.isHealthy()).toBe(false);
  });

  it('a progress report the outbox cannot take neither stops progress ticking nor the drain deadline', async () => {
    const disk = { full: false };
    const s = await stores();
    const outbox = failing(s.outbox, disk, ['enqueue'], () => enospc(`${stateDir}/outbox/9.json`));
    const cloud = createCloud();
    cloud.offers.push(offerOf('long', [step('sleep', ['sleep', '30'])]));
    const extended: number[] = [];
    const agent = build(cloud, { ...s, outbox }, {
      drainTimeoutMs: 300,
      stopAllowanceMs: 5000,
      notifier: { ready() {}, status() {}, stopping() {}, extendTimeout: (ms) => void extended.push(ms) },
    });
    const running = agent.run();
    await waitFor(() => cloud.sent.some((x) => x.jobId === 'long'), 20_000, 'the job to start');
    disk.full = true;
    agent.stop();
    await running;
    const final = finals(cloud.sent, 'long')[0]?.report;
    expect(final?.status).toBe('FAILED');
    expect(final?.reason).toContain('stopped by agent shutdown');
    expect(messages()).toContain('job job long did not finish within the drain timeout; stopping it');
    expect(extended.length).toBeGreaterThan(0);
    expect(extended[0]).toBeGreaterThan(5000);
    expect(extended[0]).toBeLessThanOrEqual(5300);
  });
});
