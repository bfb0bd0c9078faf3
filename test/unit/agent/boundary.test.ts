// The agent's error boundary over the real journal, outbox, history and engine,
// with faults injected into the stores: a full or read-only state directory
// degrades the agent (no job lost, no job run twice, every final delivered), a
// bug or a dead loop makes run() reject with LoopDiedError (exit 70).
import { chmod, mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Agent } from '../../../src/agent/agent.js';
import type { AgentDeps, LoopName } from '../../../src/agent/ports.js';
import { withTestLoopDeath } from '../../../src/cli/test-loop-death.js';
import { createSystemClock } from '../../../src/clock/clock.js';
import { LoopDiedError, StateIoError, type LocalFault } from '../../../src/errors/errors.js';
import { waitFor } from '../../cloud/wait-for.js';
import { createCaptureLog } from '../cloud/capture-log.js';
import { agentDeps, buildAgent, createScriptedCloud, finals, offerOf, openStores, SCRIPTS, step, type ScriptedCloud, type Stores } from './agent-harness.js';

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
    return { ...(await openStores(stateDir, logs)), clock: createSystemClock(), log: logs };
  }

  function build(cloud: ScriptedCloud, s: Stores, overrides: Partial<AgentDeps> = {}): Agent {
    return buildAgent({ dir, cloud, stores: s, log: logs, overrides: { progressIntervalMs: 50, ...overrides } });
  }

  const messages = () => logs.entries.map((r) => r.message);

  it('a final report the disk cannot take is sent directly, stored when the disk recovers, and the job is not reported interrupted', async () => {
    const disk = { full: false };
    const s = await stores();
    const journal = failing(s.journal, disk, ['recordFinal', 'recordStep'], () => enospc(`${stateDir}/journal/x.json`));
    const outbox = failing(s.outbox, disk, ['enqueue'], () => enospc(`${stateDir}/outbox/1.json`));
    const cloud = createScriptedCloud();
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
    const cloud = createScriptedCloud();
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

  it('with push on and a long connected poll interval, a broken state_dir is still probed at the plain poll interval', async () => {
    const s = await stores();
    const cloud = createScriptedCloud();
    const fault = { path: stateDir, errno: 'EROFS', message: `${stateDir}: EROFS: read-only file system` };
    let probes = 0;
    const agent = build(cloud, s, {
      // mqtt.poll_interval_when_connected = 1h: the health allowance, not the probe cadence
      longestPollWaitMs: 3_600_000,
      recheckIntervalMs: 20,
      checkState: async () => fault,
      probeState: async () => {
        probes += 1;
        return fault;
      },
    });
    const running = agent.run();
    await waitFor(() => probes >= 3, 5000, 'three probes of the read-only state_dir');
    expect(agent.describe()).toBe(`degraded: ${stateDir}: EROFS: read-only file system; taking no new job, checking again every 20ms`);
    agent.stop();
    await running;
    expect(cloud.polls()).toBe(0);
  });

  it('a job that cannot be journaled is not run: FAILED "not started", sent directly, in history after recovery', async () => {
    const disk = { full: true };
    const s = await stores();
    const journal = failing(s.journal, disk, ['begin'], () => enospc(`${stateDir}/journal/new.json`));
    const outbox = failing(s.outbox, disk, ['enqueue'], () => enospc(`${stateDir}/outbox/1.json`));
    const cloud = createScriptedCloud();
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
    const cloud = createScriptedCloud();
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
    const cloud = createScriptedCloud();
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

  // each death is a bug in a port only that loop uses, made by the helper behind CLOUDJOBS_TEST_LOOP_DEATH (loop-death.sh)
  it.each<LoopName>(['delivery', 'poll', 'progress', 'status writer'])('the %s loop dying makes run() reject', async (loop) => {
    const s = await stores();
    const cloud = createScriptedCloud();
    // a job that outlives the death: progress ticks, and its second step changes the status
    cloud.offers.push(offerOf('dies', [step('wait', ['sleep', '1']), step('after', ['true'])]));
    const deps = agentDeps({ dir, cloud, stores: s, log: logs, overrides: { progressIntervalMs: 50 } });
    const agent = new Agent(withTestLoopDeath(deps, { loop, afterMs: 300 }, createSystemClock()));
    await expect(agent.run()).rejects.toThrow(`the ${loop} loop died: test fault: CLOUDJOBS_TEST_LOOP_DEATH killed the ${loop} loop`);
    expect(agent.isHealthy()).toBe(false);
  });

  it('a progress report the outbox cannot take neither stops progress ticking nor the drain deadline', async () => {
    const disk = { full: false };
    const s = await stores();
    const outbox = failing(s.outbox, disk, ['enqueue'], () => enospc(`${stateDir}/outbox/9.json`));
    const cloud = createScriptedCloud();
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
