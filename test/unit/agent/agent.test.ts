// The agent's loops over the real journal, outbox, history and job engine (real
// fixture scripts), with a scripted cloud: recovery, re-offers, cancellation,
// delivery retries, draining and the disabled mode.
import { spawn, type ChildProcess } from 'node:child_process';
import { chmod, mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Agent } from '../../../src/agent/agent.js';
import type { AgentDeps } from '../../../src/agent/ports.js';
import type { AgentStatus } from '../../../src/agent/status.js';
import type { StopCause } from '../../../src/agent/stop-cause.js';
import { createStopCauseReader } from '../../../src/cli/stop-cause-reader.js';
import { createManualClock, createSystemClock } from '../../../src/clock/clock.js';
import { createPollScheduler } from '../../../src/cloud/backoff.js';
import type { PollAnswer } from '../../../src/cloud/client.js';
import { CloudError } from '../../../src/cloud/cloud-error.js';
import { createNullLog, type Log } from '../../../src/log/log.js';
import { createRecordingLog } from '../state/helpers.js';
import { openHistory } from '../../../src/state/history.js';
import { openJournal } from '../../../src/state/journal.js';
import { openOutbox } from '../../../src/state/outbox.js';
import type { SelfUpdateOutcome } from '../../../src/state/self-update-outcome.js';
import { createStepResult } from '../../../src/jobs/step-result.js';
import { waitFor } from '../../cloud/wait-for.js';
import {
  buildAgent,
  createScriptedCloud,
  createTestEngine as createHarnessEngine,
  finals,
  offerOf,
  openStores,
  RUN_USER,
  SCRIPTS,
  step,
  type ScriptedCloud,
  type Sent,
} from './agent-harness.js';

// The forgery of issue 21: a process of another user named `systemctl`, saying
// `restart cloudjobs`, with the job's CLOUDJOBS_JOB_ID in its environment.
function startForgedProcess(jobId: string): ChildProcess {
  const asOther = process.getuid?.() === 0 ? ['setpriv', '--reuid=nobody', '--regid=nogroup', '--clear-groups'] : [];
  const [file, ...args] = [...asOther, 'env', '-i', `CLOUDJOBS_JOB_ID=${jobId}`, 'bash', '-c', 'exec -a systemctl bash -c "sleep 60; :" restart cloudjobs'];
  return spawn(file!, args, { stdio: 'ignore', detached: true });
}

async function forgedIsUp(pid: number): Promise<boolean> {
  const cmdline = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
  return cmdline.startsWith('systemctl\0');
}

// A machine that "reboots" in memory: the boot changes when told, and the
// reboot command is a function (stopping the agent like systemd would).
function createFakeMachine() {
  const machine = {
    bootId: 'boot-1',
    requests: 0,
    onReboot: (): void | Promise<void> => undefined,
    port(overrides: Partial<AgentDeps['reboot']> = {}): AgentDeps['reboot'] {
      return {
        currentBoot: async () => ({ bootId: machine.bootId, marker: `marker-of-${machine.bootId}` }),
        requestReboot: async () => {
          machine.requests += 1;
          await machine.onReboot();
        },
        maxReboots: 3,
        rebootUsers: [RUN_USER],
        rebootTimeoutMs: 600_000,
        commandText: 'fake reboot',
        ...overrides,
      };
    },
  };
  return machine;
}

describe('Agent', () => {
  let dir: string;
  let statuses: AgentStatus[];

  beforeEach(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'cloudjobs-agent-'));
    await chmod(dir, 0o755);
    statuses = [];
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  function createTestEngine(jobs: { kill_grace?: number } = {}): AgentDeps['engine'] {
    return createHarnessEngine(dir, createNullLog(), jobs);
  }

  async function build(cloud: ScriptedCloud, overrides: Partial<AgentDeps> = {}, log: Log = createNullLog()): Promise<Agent> {
    const stores = await openStores(path.join(dir, 'state'), log);
    return buildAgent({
      dir,
      cloud,
      stores,
      log,
      overrides: {
        reboot: createFakeMachine().port(),
        writeStatus: async (status) => {
          statuses.push(status);
        },
        ...overrides,
      },
    });
  }

  // the stored history, newest first
  async function historyOf(limit: number) {
    const history = await openHistory({ stateDir: path.join(dir, 'state'), size: 10, log: createNullLog(), clock: createSystemClock() });
    return history.list(limit);
  }

  it('runs a job, reports IN_PROGRESS then exactly one complete final, and keeps it in history', async () => {
    const cloud = createScriptedCloud();
    cloud.offers.push(offerOf('j1', [step('say', ['echo', 'hello']), step('again', ['echo', 'world'])]));
    const agent = await build(cloud);
    const running = agent.run();
    await waitFor(() => finals(cloud.sent, 'j1').length === 1, 20_000, 'the final report');
    agent.stop();
    await running;
    const reports = cloud.sent.filter((s) => s.jobId === 'j1').map((s) => s.report);
    expect(reports[0]?.status).toBe('IN_PROGRESS');
    const final = reports[reports.length - 1]!;
    expect(final).toMatchObject({
      status: 'SUCCEEDED',
      exit_code: 0,
      stdout: '=== Step: say ===\nhello\n=== Step: again ===\nworld\n',
      stderr: '',
      reason: '2 of 2 steps succeeded',
      executed_steps: 2,
      failed_step: null,
    });
    expect(Object.keys(final).sort()).toEqual(
      ['exit_code', 'executed_steps', 'failed_step', 'reason', 'status', 'status_details', 'stderr', 'stdout'].sort(),
    );
    expect(finals(cloud.sent, 'j1')).toHaveLength(1);
    const history = await historyOf(5);
    expect(history.map((h) => [h.jobId, h.report.status])).toEqual([['j1', 'SUCCEEDED']]);
    expect(agent.getStatus().outbox.count).toBe(0);
  });

  it('does not run a job id again that it already finished: it resends the stored final report', async () => {
    const marks = path.join(dir, 'marks');
    const cloud = createScriptedCloud();
    const offer = offerOf('again', [step('mark', [path.join(SCRIPTS, 'mark.sh'), marks, 'ran'])]);
    await chmod(dir, 0o1777); // the run user appends to the marks file; sticky as work_dir sits below (work-dir.ts)
    cloud.offers.push(offer);
    const agent = await build(cloud);
    const running = agent.run();
    await waitFor(() => finals(cloud.sent, 'again').length === 1, 20_000, 'the first final');
    cloud.offers.push(offer);
    await waitFor(() => finals(cloud.sent, 'again').length === 2, 20_000, 'the resent final');
    agent.stop();
    await running;
    expect((await readFile(marks, 'utf8')).trim().split('\n')).toEqual(['ran']);
    const [first, second] = finals(cloud.sent, 'again');
    expect(second!.report).toEqual(first!.report);
  });

  it('recovers a job interrupted by a crash: FAILED with the step that was running, never run again', async () => {
    const stateDir = path.join(dir, 'state');
    const clock = createSystemClock();
    const journal = await openJournal({ stateDir, log: createNullLog(), clock });
    const offer = offerOf('crashed', [step('first', ['true']), step('second', ['sleep', '5'])]);
    await journal.begin(offer, clock.now(), await createFakeMachine().port().currentBoot());
    await journal.recordStepStart('crashed', 1, 2, 'second');
    const cloud = createScriptedCloud();
    const agent = await build(cloud);
    const running = agent.run();
    await waitFor(() => finals(cloud.sent, 'crashed').length === 1, 20_000, 'the recovered final');
    agent.stop();
    await running;
    const [final] = finals(cloud.sent, 'crashed');
    expect(final!.report.status).toBe('FAILED');
    expect(final!.report.reason).toBe(
      'interrupted: the agent stopped while step 2 of 2 (second) was running; the job was not resumed',
    );
    expect(final!.report.status_details).toMatchObject({ interrupted: true, journal_may_lag: false });
    expect(cloud.sent.filter((s) => s.jobId === 'crashed')).toHaveLength(1);
    const reopened = await openJournal({ stateDir, log: createNullLog(), clock });
    expect(reopened.list()).toEqual([]);
  });

  it('a job interrupted in an earlier boot (power loss: step records may have rolled back) is reported with its journal as a lower bound', async () => {
    const stateDir = path.join(dir, 'state');
    const clock = createSystemClock();
    const journal = await openJournal({ stateDir, log: createNullLog(), clock });
    await journal.begin(offerOf('cut', [step('first', ['true']), step('second', ['true'])]), clock.now(), { bootId: 'boot-0', marker: 'marker-of-boot-0' });
    const cloud = createScriptedCloud();
    const agent = await build(cloud);
    const running = agent.run();
    await waitFor(() => finals(cloud.sent, 'cut').length === 1, 20_000, 'the recovered final');
    agent.stop();
    await running;
    const [final] = finals(cloud.sent, 'cut');
    expect(final!.report).toMatchObject({ status: 'FAILED', executed_steps: 0, status_details: { interrupted: true, journal_may_lag: true } });
    expect(final!.report.reason).toBe(
      'interrupted: the agent stopped before the first step started as far as its journal shows; the device restarted since (power loss or reboot), ' +
        'and steps are not synced to disk one by one, so later steps may have started; the job was not resumed',
    );
  });

  it('a crash after the final report reached the outbox: that final goes out once, the job is not called interrupted', async () => {
    const stateDir = path.join(dir, 'state');
    const clock = createSystemClock();
    const journal = await openJournal({ stateDir, log: createNullLog(), clock });
    const offer = offerOf('finished', [step('only', ['true'])]);
    await journal.begin(offer, clock.now(), await createFakeMachine().port().currentBoot());
    const outbox = await openOutbox({ stateDir, maxReports: 10, maxBytes: 1e6, log: createNullLog(), clock });
    const report = { status: 'SUCCEEDED', exit_code: 0, stdout: '', stderr: '', reason: '1 of 1 steps succeeded', executed_steps: 1, failed_step: null, status_details: {} } as const;
    await outbox.enqueue('finished', report);
    const cloud = createScriptedCloud();
    const agent = await build(cloud);
    const running = agent.run();
    await waitFor(() => finals(cloud.sent, 'finished').length === 1, 20_000, 'the final from the outbox');
    agent.stop();
    await running;
    expect(cloud.sent.filter((s) => s.jobId === 'finished').map((s) => [s.report.status, s.report.reason])).toEqual([['SUCCEEDED', '1 of 1 steps succeeded']]);
    expect((await openJournal({ stateDir, log: createNullLog(), clock })).list()).toEqual([]);
    expect((await historyOf(5)).map((h) => [h.jobId, h.report.status])).toEqual([['finished', 'SUCCEEDED']]);
  });

  it('a journal entry a crash brought back after its final was delivered (removal not fsynced): removed, nothing sent', async () => {
    const stateDir = path.join(dir, 'state');
    const clock = createSystemClock();
    const journal = await openJournal({ stateDir, log: createNullLog(), clock });
    const offer = offerOf('delivered', [step('only', ['true'])]);
    await journal.begin(offer, clock.now(), await createFakeMachine().port().currentBoot());
    const history = await openHistory({ stateDir, size: 10, log: createNullLog(), clock });
    const report = { status: 'SUCCEEDED', exit_code: 0, stdout: '', stderr: '', reason: '1 of 1 steps succeeded', executed_steps: 1, failed_step: null, status_details: {} } as const;
    const at = new Date(clock.now()).toISOString();
    await history.add({ jobId: 'delivered', jobName: 'delivered', receivedAt: at, finishedAt: at, report });
    const cloud = createScriptedCloud();
    cloud.offers.push(offerOf('next', [step('ok', ['true'])]));
    const log = createRecordingLog();
    const agent = await build(cloud, {}, log);
    const running = agent.run();
    await waitFor(() => finals(cloud.sent, 'next').length === 1, 20_000, 'the next job');
    agent.stop();
    await running;
    expect(cloud.sent.filter((s) => s.jobId === 'delivered')).toEqual([]);
    // finished, not interrupted: no FAILED report is made for it, not even one history keeps out
    expect(log.messages('warn').filter((m) => m.includes('interrupted'))).toEqual([]);
    expect((await openJournal({ stateDir, log: createNullLog(), clock })).list()).toEqual([]);
  });

  it('keeps a final report until the cloud takes it, retrying through failures', async () => {
    const cloud = createScriptedCloud();
    cloud.answer = (_jobId, report, attempt) =>
      report.status === 'SUCCEEDED' && attempt <= 3 ? new CloudError('server', `HTTP 503 (attempt ${attempt})`, { status: 503 }) : 'accepted';
    cloud.offers.push(offerOf('flaky', [step('ok', ['true'])]));
    const agent = await build(cloud);
    const running = agent.run();
    await waitFor(() => finals(cloud.sent, 'flaky').length === 1, 20_000, 'the delivered final');
    agent.stop();
    await running;
    expect(cloud.attempts.get('flaky:SUCCEEDED')).toBe(4);
    expect(finals(cloud.sent, 'flaky')).toHaveLength(1);
    expect(agent.getStatus().reports).toMatchObject({ refused: 0, retried: 3, cut: 0 });
  });

  // 60000 control characters: 360 KB as JSON
  const flood = (name: string): unknown => step(name, ['sh', '-c', 'head -c 60000 /dev/zero | tr "\\0" "\\1"; head -c 60000 /dev/zero | tr "\\0" "\\2" >&2']);

  it('answers a 413 with a smaller body, never the same one, and remembers the limit for later reports', async () => {
    const cloud = createScriptedCloud();
    const limit = 100_000;
    const sizes: number[] = [];
    cloud.answer = (_jobId, report) => {
      const bytes = Buffer.byteLength(JSON.stringify(report));
      sizes.push(bytes);
      return bytes > limit ? 'too-large' : 'accepted';
    };
    cloud.offers.push(offerOf('big', [flood('flood')]), offerOf('next', [flood('flood again')]));
    const agent = await build(cloud);
    const running = agent.run();
    const accepted = (): Sent[] => finals(cloud.sent, 'big').concat(finals(cloud.sent, 'next')).filter((s) => Buffer.byteLength(JSON.stringify(s.report)) <= limit);
    await waitFor(() => accepted().length === 2, 20_000, 'both finals');
    agent.stop();
    await running;
    // 720 KB made, refused, then 360, 180 and 90 KB (a progress report may take some of
    // these refusals); the next job's report goes out below the remembered ceiling at once
    const refused = sizes.filter((size) => size > limit).length;
    expect(refused).toBeGreaterThanOrEqual(1);
    expect(refused).toBeLessThanOrEqual(3);
    // each 413 halves the body: no body is ever sent twice at the same size after a refusal
    for (let i = 1; i < sizes.length; i += 1) if (sizes[i - 1]! > limit) expect(sizes[i]).toBeLessThanOrEqual(sizes[i - 1]! / 2);
    const delivered = accepted();
    expect(delivered.map((s) => [s.jobId, s.report.status])).toEqual([['big', 'FAILED'], ['next', 'FAILED']]);
    for (const { report } of delivered) {
      expect(report.stdout).toMatch(/bytes omitted to fit the report size limit/);
      expect(report.status_details.truncated).toMatchObject({ budget_bytes: expect.any(Number) });
    }
    const counts = agent.getStatus().reports;
    expect(counts.refused).toBe(0);
    expect(counts.cut).toBeGreaterThanOrEqual(2);
    // history keeps the report as made (within the report budget), not the cut sent one
    const [latest] = await historyOf(1);
    expect(Buffer.byteLength(JSON.stringify(latest!.report))).toBeGreaterThan(limit);
  });

  it('gives up a report that is too large even at the smallest size; later reports still go out', async () => {
    const cloud = createScriptedCloud();
    cloud.answer = (jobId, report) => (jobId === 'never' && report.status === 'SUCCEEDED' ? 'too-large' : 'accepted');
    cloud.offers.push(offerOf('never', [step('ok', ['echo', 'fine'])]), offerOf('after', [step('ok', ['echo', 'fine'])]));
    const agent = await build(cloud);
    const running = agent.run();
    await waitFor(() => finals(cloud.sent, 'after').length === 1, 20_000, 'the later final');
    agent.stop();
    await running;
    // a small report is already below the smallest budget: given up on its first 413
    expect(cloud.attempts.get('never:SUCCEEDED')).toBe(1);
    expect(agent.getStatus().reports).toMatchObject({ refused: 1, cut: 0 });
    expect(statuses.some((status) => /^idle, .*; 1 report refused by the cloud$/.test(status.describe ?? ''))).toBe(true);
    const history = await historyOf(5);
    expect(history.map((h) => [h.jobId, h.report.status])).toEqual([
      ['after', 'SUCCEEDED'],
      ['never', 'SUCCEEDED'],
    ]);
    expect(agent.getStatus().outbox.count).toBe(0);
  });

  it('stops a job the cloud canceled and ends it CANCELED', async () => {
    const cloud = createScriptedCloud();
    // the first progress report may go out before step 1 starts: the cancel answers a later one, sent while it runs
    let progress = 0;
    cloud.answer = (_jobId, report) => (report.status === 'IN_PROGRESS' && ++progress >= 2 ? 'canceled' : 'accepted');
    cloud.offers.push(offerOf('cancel-me', [step('long', ['sleep', '30']), step('never', ['true'])]));
    const agent = await build(cloud);
    const running = agent.run();
    await waitFor(() => finals(cloud.sent, 'cancel-me').length === 1, 20_000, 'the CANCELED final');
    agent.stop();
    await running;
    const [final] = finals(cloud.sent, 'cancel-me');
    expect(final!.report.status).toBe('CANCELED');
    expect(final!.report.executed_steps).toBe(1);
  });

  it('tells the engine, as each step starts, whether the agent is stopping (a step then gets no scope of the job slice)', async () => {
    const cloud = createScriptedCloud();
    cloud.offers.push(offerOf('two', [step('first', ['sleep', '0.5']), step('second', ['echo', 'after'])]));
    const seen: Array<boolean | undefined> = [];
    const engine = createHarnessEngine(dir, createNullLog());
    const agent = await build(cloud, {
      engine: {
        ...engine,
        start: (job, hooks, start) =>
          engine.start(job, { ...hooks, onStepStart: (index, total, name) => {
            seen.push(hooks.agentStopping?.());
            return hooks.onStepStart(index, total, name);
          } }, start),
      },
    });
    const running = agent.run();
    await waitFor(() => seen.length === 1, 20_000, 'the first step to start');
    agent.stop();
    await running;
    expect(finals(cloud.sent, 'two').map((s) => s.report.status)).toEqual(['SUCCEEDED']);
    expect(seen).toEqual([false, true]);
  });

  it('on the first stop lets the running job finish; the second stop ends it as a shutdown', async () => {
    const cloud = createScriptedCloud();
    cloud.offers.push(offerOf('drain', [step('short', ['sleep', '1'])]));
    cloud.offers.push(offerOf('kill', [step('long', ['sleep', '30'])]));
    const agent = await build(cloud);
    const running = agent.run();
    await waitFor(() => cloud.sent.some((s) => s.jobId === 'drain'), 20_000, 'the first job to start');
    agent.stop();
    await running;
    expect(finals(cloud.sent, 'drain').map((s) => s.report.status)).toEqual(['SUCCEEDED']);
    expect(cloud.sent.some((s) => s.jobId === 'kill')).toBe(false);

    const second = createScriptedCloud();
    second.offers.push(offerOf('kill', [step('long', ['sleep', '30'])]));
    const agent2 = await build(second);
    const running2 = agent2.run();
    await waitFor(() => second.sent.some((s) => s.jobId === 'kill'), 20_000, 'the long job to start');
    agent2.stop();
    agent2.stop();
    await running2;
    const [final] = finals(second.sent, 'kill');
    expect(final!.report.status).toBe('FAILED');
    expect(final!.report.reason).toContain('stopped by agent shutdown');
  });

  it('is unhealthy (no watchdog ping) once a poll hangs past twice the larger of interval and request time limit', async () => {
    const cloud = createScriptedCloud();
    let release: (() => void) | null = null;
    cloud.client.nextJob = () => new Promise<PollAnswer>((resolve) => (release = () => resolve({ kind: 'none' })));
    const clock = createManualClock(1_000_000);
    const agent = await build(cloud, { clock, longestPollWaitMs: 100, requestTimeoutMs: 5000 });
    const running = agent.run();
    await waitFor(() => release !== null, 5000, 'the first poll to be in flight');
    expect(agent.isHealthy()).toBe(true);
    await clock.advance(10_000);
    expect(agent.isHealthy()).toBe(true);
    await clock.advance(1);
    expect(agent.isHealthy()).toBe(false);
    agent.stop();
    release!();
    await running;
  });

  it('a wall clock set hours forward or back (NTP on a Pi without RTC) changes no health allowance', async () => {
    const cloud = createScriptedCloud();
    let release: (() => void) | null = null;
    cloud.client.nextJob = () => new Promise<PollAnswer>((resolve) => (release = () => resolve({ kind: 'none' })));
    const clock = createManualClock(1_000_000);
    const agent = await build(cloud, { clock, longestPollWaitMs: 100, requestTimeoutMs: 5000 });
    const running = agent.run();
    await waitFor(() => release !== null, 5000, 'the first poll to be in flight');
    clock.stepWall(2 * 3600_000);
    expect(agent.isHealthy()).toBe(true);
    clock.stepWall(-4 * 3600_000);
    await clock.advance(10_000);
    expect(agent.isHealthy()).toBe(true);
    await clock.advance(1);
    expect(agent.isHealthy()).toBe(false);
    agent.stop();
    release!();
    await running;
  });

  it('with jobs disabled stays idle, never polls, and says why', async () => {
    const cloud = createScriptedCloud();
    const agent = await build(cloud, { disabledReason: 'jobs.enabled is false' });
    const running = agent.run();
    await waitFor(() => statuses.some((s) => s.state === 'disabled'), 5000, 'the disabled state');
    expect(agent.describe()).toBe('idle: jobs disabled (jobs.enabled is false)');
    agent.stop();
    await running;
    expect(cloud.polls()).toBe(0);
  });

  it('wake() ends an idle wait: a notification brings the next poll now, not an interval later', async () => {
    const cloud = createScriptedCloud();
    const clock = createManualClock(1_000_000);
    const push = { state: 'connected' as const, broker: 'mqtt://127.0.0.1:1883', since: 1_000_000, lastNotificationAt: null, notifications: 0, lastError: null };
    const agent = await build(cloud, {
      clock,
      longestPollWaitMs: 30_000,
      recheckIntervalMs: 30_000,
      scheduler: createPollScheduler({ intervalMs: 30_000, jitter: 0, maxBackoffMs: 1000, random: () => 0.5 }),
      pushStatus: () => push,
    });
    const running = agent.run();
    await waitFor(() => cloud.polls() === 1, 5000, 'the first poll');
    await clock.advance(5000);
    expect(cloud.polls()).toBe(1);
    cloud.offers.push(offerOf('pushed', [step('one', ['true'])]));
    for (let i = 0; i < 100; i += 1) agent.wake();
    await clock.advance(1);
    await waitFor(() => cloud.polls() === 2, 5000, 'the poll the wake-up asked for');
    await waitFor(() => cloud.polls() === 3, 20_000, 'the poll after the job (the queue drains back to back)');
    await clock.advance(20_000);
    // a hundred wake-ups were one: no more polls until the interval
    expect(cloud.polls()).toBe(3);
    expect(agent.getStatus().push).toEqual(push);
    expect(agent.describe()).toMatch(/^idle, last poll \d+s ago; push connected$/);
    agent.stop();
    await running;
  });

  it('backs off after poll failures by the scheduled delay (1s step, doubling, full jitter) and reports it in its status', async () => {
    const cloud = createScriptedCloud();
    const answering = cloud.client.nextJob;
    let failures = 0;
    cloud.client.nextJob = async (signal) => {
      if (failures < 2) {
        failures += 1;
        throw new CloudError('network', 'cannot reach 127.0.0.1:9 (ECONNREFUSED)');
      }
      return answering(signal);
    };
    const clock = createManualClock(1_000_000);
    // random 0.5: the first failure waits half of 1s, the second half of 2s
    const scheduler = createPollScheduler({ intervalMs: 60_000, jitter: 0, maxBackoffMs: 8000, random: () => 0.5 });
    const agent = await build(cloud, { clock, scheduler });
    const running = agent.run();
    const settled = async () => {
      for (let i = 0; i < 20; i += 1) await new Promise((resolve) => setImmediate(resolve));
    };
    const attempts = () => failures + cloud.polls();
    await waitFor(() => statuses.some((s) => s.state === 'backoff'), 5000, 'the backoff after the first failure');
    const backoff = statuses.find((s) => s.state === 'backoff')!;
    expect(backoff.lastPoll?.outcome).toBe('network');
    expect(backoff.nextPollAt! - backoff.lastPoll!.at).toBe(500);
    await clock.advance(499);
    await settled();
    expect(attempts()).toBe(1);
    await clock.advance(1);
    await waitFor(() => attempts() === 2, 5000, 'the second attempt');
    await settled();
    expect(agent.getStatus().nextPollAt! - agent.getStatus().lastPoll!.at).toBe(1000);
    await clock.advance(999);
    await settled();
    expect(attempts()).toBe(2);
    await clock.advance(1);
    await waitFor(() => attempts() === 3, 5000, 'the poll after the second backoff');
    agent.stop();
    await running;
  });

  describe('a job that restarts the agent (stop-cause.ts)', () => {
    const marks = () => path.join(dir, 'marks');
    const restartJob = (waiting: string[]) =>
      offerOf('rs', [
        step('mark', [path.join(SCRIPTS, 'mark.sh'), marks(), 'before']),
        step('restart', waiting),
        step('check', [path.join(SCRIPTS, 'mark.sh'), marks(), 'after']),
      ]);
    const inStep = (n: number) => () => statuses.some((s) => s.currentJob?.stepIndex === n);
    const JOB = 'systemd job 7 (restart cloudjobs.service)';
    const restartCommand: StopCause = { kind: 'restart-command', evidence: JOB, command: 'systemctl restart cloudjobs', stepIndex: 1 };
    const restart: StopCause = { kind: 'restart', evidence: JOB };

    it('a step that restarts the unit itself is cut at once and reported as cut, not as exit 0; the next agent runs the rest and sends the one final', async () => {
      await chmod(dir, 0o1777); // sticky: work_dir sits below it (work-dir.ts)
      const cloud = createScriptedCloud();
      cloud.offers.push(restartJob(['sleep', '30']));
      const first = await build(cloud, { stopCause: async () => restartCommand, drainTimeoutMs: 600_000 });
      const running = first.run();
      await waitFor(inStep(2), 20_000, 'step 2 to start');
      first.stop();
      // drain_timeout is 10 minutes: ending now means the step was cut, not waited for
      await running;
      expect(finals(cloud.sent, 'rs')).toEqual([]);
      expect((await readFile(marks(), 'utf8')).trim().split('\n')).toEqual(['before']);
      // the cut step's work dir went with it
      expect(await readdir(path.join(dir, 'work'))).toEqual([]);

      const second = await build(cloud, { version: '10.0.0-test' });
      const again = second.run();
      await waitFor(() => finals(cloud.sent, 'rs').length === 1, 20_000, 'the final report');
      second.stop();
      await again;
      expect((await readFile(marks(), 'utf8')).trim().split('\n')).toEqual(['before', 'after']);
      const final = finals(cloud.sent, 'rs')[0]!.report;
      expect(final).toMatchObject({ status: 'SUCCEEDED', executed_steps: 3 });
      expect(final.status_details).toMatchObject({ resumed_after_restart: true, agent_version_from: '9.9.9-test', agent_version_to: '10.0.0-test' });
      expect(final.stdout).toContain(`=== Step: restart ===\n[cut: the step restarts the agent (systemctl restart cloudjobs); ${JOB} was under way`);
      const steps = (final.status_details as { steps: { exit_code: number | null; signal: string | null }[] }).steps;
      // stopped through the kill ladder (SIGTERM), or before its process started on a loaded machine: never an exit code
      expect(steps[1]).toMatchObject({ exit_code: null });
      expect([null, 'SIGTERM']).toContain((steps[1] as { signal: string | null }).signal);
      expect(cloud.sent.filter((s) => s.jobId === 'rs' && s.report.reason.startsWith('resumed after the agent restarted; 2 of 3 steps done'))).toHaveLength(1);
    });

    it('on a restart root queued, the running step ends by itself first; no later step runs in the old agent', async () => {
      await chmod(dir, 0o1777); // sticky: work_dir sits below it (work-dir.ts)
      const cloud = createScriptedCloud();
      cloud.offers.push(restartJob([path.join(SCRIPTS, 'sleep-then.sh'), '0.5', 'installed']));
      const first = await build(cloud, { stopCause: async () => restart });
      const running = first.run();
      await waitFor(inStep(2), 20_000, 'step 2 to start');
      first.stop();
      await running;
      expect(finals(cloud.sent, 'rs')).toEqual([]);
      expect((await readFile(marks(), 'utf8')).trim().split('\n')).toEqual(['before']);

      const second = await build(cloud);
      const again = second.run();
      await waitFor(() => finals(cloud.sent, 'rs').length === 1, 20_000, 'the final report');
      second.stop();
      await again;
      const final = finals(cloud.sent, 'rs')[0]!.report;
      expect(final).toMatchObject({ status: 'SUCCEEDED', executed_steps: 3 });
      expect(final.stdout).toContain('=== Step: restart ===\nstarted\nfinished\n=== Step: check');
      expect((await readFile(marks(), 'utf8')).trim().split('\n')).toEqual(['before', 'after']);
    });

    it('a step that fails on a restart is reported failed by this agent, never handed over as a success', async () => {
      await chmod(dir, 0o1777); // sticky: work_dir sits below it (work-dir.ts)
      const cloud = createScriptedCloud();
      cloud.offers.push(
        offerOf('bad', [
          step('flash', ['/bin/sh', '-c', 'sleep 0.5; echo bad >&2; exit 3']),
          step('flashed', [path.join(SCRIPTS, 'mark.sh'), marks(), 'FLASHED']),
        ]),
      );
      const first = await build(cloud, { stopCause: async () => restart });
      const running = first.run();
      await waitFor(inStep(1), 20_000, 'step 1 to start');
      first.stop();
      await running;
      const [final] = finals(cloud.sent, 'bad');
      expect(final!.report).toMatchObject({ status: 'FAILED', exit_code: 3, executed_steps: 1 });
      expect(final!.report.reason).toContain('exited with code 3');
      await expect(readFile(marks(), 'utf8')).rejects.toThrow(/ENOENT/);
    });

    it('an ignored failure on a restart is handed over; the agent exits (no hang), and EXTEND_TIMEOUT_USEC goes out at most once a second', async () => {
      await chmod(dir, 0o1777); // sticky: work_dir sits below it (work-dir.ts)
      const cloud = createScriptedCloud();
      const ignored = { action: { name: 'flaky', type: 'runCommand', ignoreStepFailure: true, input: { command: ['/bin/sh', '-c', 'sleep 0.5; exit 3'] } } };
      cloud.offers.push(offerOf('ign', [step('mark', [path.join(SCRIPTS, 'mark.sh'), marks(), 'before']), ignored, step('check', [path.join(SCRIPTS, 'mark.sh'), marks(), 'after'])]));
      const extends_: number[] = [];
      const started = Date.now();
      const first = await build(cloud, {
        stopCause: async () => restart,
        notifier: { ready() {}, status() {}, stopping() {}, extendTimeout: () => extends_.push(Date.now()) },
      });
      const running = first.run();
      await waitFor(inStep(2), 20_000, 'step 2 to start');
      first.stop();
      await running;
      expect(extends_.length).toBeLessThanOrEqual(Math.ceil((Date.now() - started) / 1000) + 1);
      expect(finals(cloud.sent, 'ign')).toEqual([]);
      expect((await readFile(marks(), 'utf8')).trim().split('\n')).toEqual(['before']);

      const second = await build(cloud);
      const again = second.run();
      await waitFor(() => finals(cloud.sent, 'ign').length === 1, 20_000, 'the final report');
      second.stop();
      await again;
      const final = finals(cloud.sent, 'ign')[0]!.report;
      expect(final).toMatchObject({ status: 'SUCCEEDED', reason: '2 of 3 steps succeeded, 1 failed with ignoreStepFailure set', executed_steps: 3 });
      expect((await readFile(marks(), 'utf8')).trim().split('\n')).toEqual(['before', 'after']);
    });

    it('a parallel group is handed over only once no member runs; no member ever starts twice', async () => {
      await chmod(dir, 0o1777); // sticky: work_dir sits below it (work-dir.ts)
      const cloud = createScriptedCloud();
      const starts = path.join(dir, 'starts');
      const member = (name: string, seconds: string) => ({
        action: { name, type: 'runCommand', input: { command: ['/bin/sh', '-c', `echo ${name} >> '${starts}'; sleep ${seconds}`] } },
      });
      cloud.offers.push(offerOf('par', [{ parallel: [member('a', '0.3'), member('b', '1'), member('c', '0.2'), member('d', '0.2')] }]));
      const first = await build(cloud, { stopCause: async () => restart });
      const running = first.run();
      await waitFor(() => statuses.some((s) => s.currentJob?.stepIndex === 2), 20_000, 'member b to start');
      first.stop();
      await running;
      expect(finals(cloud.sent, 'par')).toEqual([]);
      const before = (await readFile(starts, 'utf8')).trim().split('\n');
      expect(before.length).toBeLessThan(4);

      const second = await build(cloud);
      const again = second.run();
      await waitFor(() => finals(cloud.sent, 'par').length === 1, 20_000, 'the final report');
      second.stop();
      await again;
      expect((await readFile(starts, 'utf8')).trim().split('\n').sort()).toEqual(['a', 'b', 'c', 'd']);
      expect(finals(cloud.sent, 'par')[0]!.report).toMatchObject({ status: 'SUCCEEDED', executed_steps: 4 });
    });

    it('a forged process (argv[0] systemctl, CLOUDJOBS_JOB_ID, another user) changes nothing: the real stop cause reader drains', async () => {
      await chmod(dir, 0o1777); // sticky: work_dir sits below it (work-dir.ts)
      const cloud = createScriptedCloud();
      cloud.offers.push(
        offerOf('forged', [
          step('flash', ['/bin/sh', '-c', 'sleep 1; echo bad >&2; exit 3']),
          step('flashed', [path.join(SCRIPTS, 'mark.sh'), marks(), 'FLASHED']),
        ]),
      );
      const first = await build(cloud, { stopCause: createStopCauseReader() });
      const running = first.run();
      await waitFor(inStep(1), 20_000, 'step 1 to start');
      const forged = startForgedProcess('forged');
      try {
        await waitFor(() => forgedIsUp(forged.pid!), 5000, 'the forged process');
        first.stop();
        await running;
      } finally {
        // the job's last sweep may have ended it already (it carries the job's id)
        try {
          process.kill(-forged.pid!, 'SIGKILL');
        } catch {
          // gone
        }
      }
      const [final] = finals(cloud.sent, 'forged');
      expect(final!.report, JSON.stringify({ ...final!.report, stdout: undefined, stderr: undefined })).toMatchObject({ status: 'FAILED', exit_code: 3, executed_steps: 1 });
      await expect(readFile(marks(), 'utf8')).rejects.toThrow(/ENOENT/);
    });

    it('after a self-update the next agent waits for the verdict: rolled back ends the job FAILED, the rest does not run', async () => {
      await chmod(dir, 0o1777); // sticky: work_dir sits below it (work-dir.ts)
      const cloud = createScriptedCloud();
      cloud.offers.push(restartJob([path.join(SCRIPTS, 'sleep-then.sh'), '0.3', 'installed']));
      const first = await build(cloud, { stopCause: async () => restart });
      const running = first.run();
      await waitFor(inStep(2), 20_000, 'step 2 to start');
      first.stop();
      await running;

      const reads: string[] = [];
      const removed: string[] = [];
      const answers: SelfUpdateOutcome[] = [
        { status: 'pending', from: '1.0-1', to: '2.0-1', reason: 'installing' },
        { status: 'rolled-back', from: '1.0-1', to: '2.0-1', reason: 'rolled back to 1.0-1: the new agent did not come up within 20s' },
      ];
      const second = await build(cloud, {
        selfUpdate: {
          read: async (jobId) => {
            reads.push(jobId);
            return answers.length > 1 ? answers.shift()! : answers[0]!;
          },
          remove: async (jobId) => {
            removed.push(jobId);
          },
        },
      });
      const again = second.run();
      await waitFor(() => finals(cloud.sent, 'rs').length === 1, 20_000, 'the final report');
      second.stop();
      await again;
      const final = finals(cloud.sent, 'rs')[0]!.report;
      expect(final).toMatchObject({ status: 'FAILED', reason: 'rolled back to 1.0-1: the new agent did not come up within 20s', executed_steps: 2 });
      expect(final.status_details).toMatchObject({ package_version_from: '1.0-1', package_version_to: '2.0-1' });
      expect(reads.length).toBeGreaterThanOrEqual(2);
      expect(removed).toEqual(['rs']);
      expect((await readFile(marks(), 'utf8')).trim().split('\n')).toEqual(['before']);
    });

    it('a stop from outside drains as before', async () => {
      await chmod(dir, 0o1777); // sticky: work_dir sits below it (work-dir.ts)
      const cloud = createScriptedCloud();
      cloud.offers.push(restartJob([path.join(SCRIPTS, 'sleep-then.sh'), '0.5', 'slow']));
      const first = await build(cloud, { stopCause: async () => ({ kind: 'outside', evidence: 'systemd job 9 (stop cloudjobs.service) is not a restart' }) });
      const running = first.run();
      await waitFor(inStep(2), 20_000, 'step 2 to start');
      first.stop();
      await running;
      expect(finals(cloud.sent, 'rs').map((s) => `${s.report.status}: ${s.report.reason}`)).toEqual(['SUCCEEDED: 3 of 3 steps succeeded']);
      expect(finals(cloud.sent, 'rs')[0]!.report.status_details).not.toHaveProperty('resumed_after_restart');
    });
  });

  it('a server handing out the same finished job forever does not make the poll loop spin', async () => {
    const cloud = createScriptedCloud();
    cloud.offers.push(offerOf('again', [step('say', ['echo', 'hello'])]));
    const agent = await build(cloud);
    const running = agent.run();
    await waitFor(() => finals(cloud.sent, 'again').length === 1, 20_000, 'the final report');
    // from now on every poll hands the finished job out again
    const again = offerOf('again', [step('say', ['echo', 'hello'])]);
    cloud.client.nextJob = async () => ({ kind: 'job', offer: again });
    const polledAt = Date.now();
    const sentBefore = cloud.sent.length;
    await new Promise((resolve) => setTimeout(resolve, 1000));
    agent.stop();
    await running;
    const seconds = (Date.now() - polledAt) / 1000;
    // at most one re-offer per 200 ms: the bug re-queued and re-sent the final report hundreds of times a second
    expect(cloud.sent.length - sentBefore).toBeLessThanOrEqual(Math.ceil(seconds * 5) + 2);
  });

  describe('every stop ends', () => {
    it('a second stop ends a hand-over wait at once: the running step is stopped and reported as stopped, not handed over', async () => {
      await chmod(dir, 0o1777); // sticky: work_dir sits below it (work-dir.ts)
      const cloud = createScriptedCloud();
      cloud.offers.push(offerOf('wait', [step('long', ['sleep', '30']), step('after', ['echo', 'after'])]));
      const agent = await build(cloud, { stopCause: async () => ({ kind: 'restart', evidence: 'systemd job 7 (restart cloudjobs.service)' }), drainTimeoutMs: 600_000 });
      const running = agent.run();
      await waitFor(() => statuses.some((s) => s.currentJob?.stepIndex === 1), 20_000, 'the step to start');
      agent.stop();
      await new Promise((resolve) => setTimeout(resolve, 300));
      agent.stop();
      await running;
      expect(finals(cloud.sent, 'wait')[0]!.report).toMatchObject({ status: 'FAILED', reason: 'stopped by agent shutdown', executed_steps: 1 });
    });

    it('the drain deadline is exact: it does not wait for the next progress tick', async () => {
      const cloud = createScriptedCloud();
      cloud.offers.push(offerOf('long', [step('long', ['sleep', '30'])]));
      const agent = await build(cloud, { progressIntervalMs: 60_000, drainTimeoutMs: 300 });
      const running = agent.run();
      await waitFor(() => statuses.some((s) => s.currentJob?.stepIndex === 1), 20_000, 'the step to start');
      const stoppedAt = Date.now();
      agent.stop();
      await running;
      // generous bound (a loaded machine); the bug waited a whole progress_interval (60 s) here
      expect(Date.now() - stoppedAt).toBeLessThan(30_000);
      expect(finals(cloud.sent, 'long')[0]!.report).toMatchObject({ status: 'FAILED', reason: 'stopped by agent shutdown' });
    });

    it('after the drain deadline the progress loop still waits between passes (no PATCH or EXTEND storm during the kill grace)', async () => {
      const cloud = createScriptedCloud();
      cloud.offers.push(offerOf('stubborn', [step('stubborn', [path.join(SCRIPTS, 'ignore-term.sh')])]));
      const extends_: number[] = [];
      const agent = await build(cloud, {
        drainTimeoutMs: 200,
        notifier: { ready() {}, status() {}, stopping() {}, extendTimeout: () => extends_.push(Date.now()) },
        engine: createTestEngine({ kill_grace: 1500 }),
      });
      const running = agent.run();
      await waitFor(() => cloud.sent.some((s) => s.jobId === 'stubborn'), 20_000, 'the job to start');
      const stoppedAt = Date.now();
      const sentBefore = cloud.sent.length;
      agent.stop();
      await running;
      const seconds = (Date.now() - stoppedAt) / 1000;
      // progress every 100 ms at most, EXTEND at most once a second: the bug sent hundreds in the kill grace
      expect(cloud.sent.length - sentBefore).toBeLessThanOrEqual(Math.ceil(seconds * 10) + 3);
      expect(extends_.length).toBeLessThanOrEqual(Math.ceil(seconds) + 1);
      expect(finals(cloud.sent, 'stubborn')[0]!.report.status).toBe('FAILED');
    });
  });

  describe('a job that reboots', () => {
    const marks = () => path.join(dir, 'marks');
    const rebootJob = () =>
      offerOf('rb', [
        step('mark', [path.join(SCRIPTS, 'mark.sh'), marks(), 'before']),
        step('reboot', [path.join(SCRIPTS, 'exit-code.sh'), '194']),
        step('check', [path.join(SCRIPTS, 'mark.sh'), marks(), 'after']),
      ]);

    it('journals REBOOTING, says so, reboots; after the boot runs the rest and reports all steps of both boots', async () => {
      await chmod(dir, 0o1777); // sticky: work_dir sits below it (work-dir.ts refuses a parent others can swap)
      const machine = createFakeMachine();
      const cloud = createScriptedCloud();
      cloud.offers.push(rebootJob());
      const first = await build(cloud, { reboot: machine.port() });
      machine.onReboot = () => first.stop();
      await first.run();
      expect(machine.requests).toBe(1);
      expect(finals(cloud.sent, 'rb')).toEqual([]);
      const rebooting = cloud.sent.filter((s) => s.jobId === 'rb').at(-1)!.report;
      expect(rebooting).toMatchObject({
        status: 'IN_PROGRESS',
        executed_steps: 2,
        reason: 'rebooting: step 2 ("reboot") asked for a reboot; 2 of 3 steps done, the rest run after the boot',
      });
      expect(rebooting.status_details).toMatchObject({ rebooting: true });
      expect(statuses.some((s) => s.describe === 'rebooting for job job rb')).toBe(true);
      expect((await readFile(marks(), 'utf8')).trim().split('\n')).toEqual(['before']);

      machine.bootId = 'boot-2';
      statuses = [];
      const second = await build(cloud, { reboot: machine.port() });
      const running = second.run();
      await waitFor(() => finals(cloud.sent, 'rb').length === 1, 20_000, 'the final report');
      second.stop();
      await running;
      expect((await readFile(marks(), 'utf8')).trim().split('\n')).toEqual(['before', 'after']);
      const after = cloud.sent.filter((s) => s.jobId === 'rb' && s.report.status === 'IN_PROGRESS').map((s) => s.report);
      expect(after.some((r) => r.reason.startsWith('resumed after reboot; 2 of 3 steps done'))).toBe(true);
      expect(statuses.some((s) => s.describe?.startsWith('resumed job job rb after reboot'))).toBe(true);
      const final = finals(cloud.sent, 'rb')[0]!.report;
      expect(final).toMatchObject({ status: 'SUCCEEDED', reason: '3 of 3 steps succeeded', executed_steps: 3, exit_code: 0 });
      expect(final.stdout).toBe(
        `=== Step: mark ===\nran before\n=== Step: reboot ===\nargs: 194\n=== Step: check ===\nran after\n`,
      );
      expect(machine.requests).toBe(1);
    });

    it('FAILED "reboot did not happen" when the boot stays the same for reboot_timeout', async () => {
      await chmod(dir, 0o1777); // sticky: work_dir sits below it (work-dir.ts refuses a parent others can swap)
      const machine = createFakeMachine();
      const cloud = createScriptedCloud();
      cloud.offers.push(rebootJob());
      const agent = await build(cloud, { reboot: machine.port({ rebootTimeoutMs: 300 }) });
      const running = agent.run();
      await waitFor(() => finals(cloud.sent, 'rb').length === 1, 20_000, 'the final report');
      agent.stop();
      await running;
      const final = finals(cloud.sent, 'rb')[0]!.report;
      expect(final).toMatchObject({
        status: 'FAILED',
        reason: 'reboot did not happen: the device was still in the same boot 300ms after the reboot was requested (jobs.reboot_timeout)',
        executed_steps: 2,
        exit_code: 194,
        failed_step: 'reboot',
      });
      expect((await readFile(marks(), 'utf8')).trim().split('\n')).toEqual(['before']);
    });

    it('FAILED at once when the reboot command fails', async () => {
      await chmod(dir, 0o1777); // sticky: work_dir sits below it (work-dir.ts refuses a parent others can swap)
      const machine = createFakeMachine();
      machine.onReboot = () => {
        throw new Error('`systemctl reboot` exited with code 1: Failed to connect to bus');
      };
      const cloud = createScriptedCloud();
      cloud.offers.push(rebootJob());
      const agent = await build(cloud, { reboot: machine.port() });
      const running = agent.run();
      await waitFor(() => finals(cloud.sent, 'rb').length === 1, 20_000, 'the final report');
      agent.stop();
      await running;
      expect(finals(cloud.sent, 'rb')[0]!.report.reason).toBe(
        'reboot did not happen: `systemctl reboot` exited with code 1: Failed to connect to bus',
      );
    });

    it('FAILED without rebooting when a step not running as root asks and jobs.reboot_users does not name its user', async () => {
      await chmod(dir, 0o1777); // sticky: work_dir sits below it (work-dir.ts)
      const machine = createFakeMachine();
      const cloud = createScriptedCloud();
      cloud.offers.push(offerOf('user', [step('reboot', [path.join(SCRIPTS, 'exit-code.sh'), '194']), step('after', ['echo', 'after'])]));
      const agent = await build(cloud, { reboot: machine.port({ rebootUsers: [] }) });
      const running = agent.run();
      await waitFor(() => finals(cloud.sent, 'user').length === 1, 20_000, 'the final report');
      agent.stop();
      await running;
      expect(machine.requests).toBe(0);
      expect(finals(cloud.sent, 'user')[0]!.report).toMatchObject({
        status: 'FAILED',
        executed_steps: 1,
        reason: `step 1 ("reboot") asked for a reboot as user ${JSON.stringify(RUN_USER)}, but only root may (jobs.reboot_users is empty); not rebooting`,
      });
    });

    it('FAILED without rebooting when the job asks once more than max_reboots', async () => {
      const machine = createFakeMachine();
      const cloud = createScriptedCloud();
      cloud.offers.push(offerOf('many', [step('reboot', [path.join(SCRIPTS, 'exit-code.sh'), '194'])]));
      const agent = await build(cloud, { reboot: machine.port({ maxReboots: 0 }) });
      const running = agent.run();
      await waitFor(() => finals(cloud.sent, 'many').length === 1, 20_000, 'the final report');
      agent.stop();
      await running;
      expect(machine.requests).toBe(0);
      expect(finals(cloud.sent, 'many')[0]!.report).toMatchObject({
        status: 'FAILED',
        reason: 'step 1 ("reboot") asked for reboot 1 of this job, but jobs.max_reboots is 0 (reboots by jobs are off)',
      });
    });
  });
});

describe('createInterruptedReport', () => {
  const SAME = { bootId: 'boot-1', marker: 'marker-1' };
  const offer = offerOf('x', [step('a', ['true']), { parallel: [step('b', ['true']), step('c', ['true'])] }]);
  const base = { version: 1 as const, jobId: 'x', jobName: 'job x', offer, receivedAt: new Date(0).toISOString(), final: null, finishedAt: null, reboots: 0, rebooting: null, boot: SAME };
  const resultA = createStepResult({ name: 'a', argv: ['true'], handler: null, user: 'nobody', startedAt: new Date(0).toISOString() }, { exitCode: 0, durationMs: 5, stdout: 'x\n', stdoutBytes: 2 });

  it('names the step that was running, or how many of how many had finished', async () => {
    const { createInterruptedReport } = await import('../../../src/agent/engine-adapter.js');
    const between = createInterruptedReport({ ...base, steps: [], running: [] }, 'v', SAME);
    expect(between.reason).toBe('interrupted: the agent stopped before the first step started; the job was not resumed');
    const after = createInterruptedReport({ ...base, steps: [{ index: 0, result: resultA }], running: [] }, 'v', SAME);
    expect(after.reason).toBe('interrupted: the agent stopped after 1 of 3 steps had finished; the job was not resumed');
    expect(after).toMatchObject({ status: 'FAILED', executed_steps: 1, stdout: '=== Step: a ===\nx\n', failed_step: null });
  });

  it('after another boot, or with a boot not known, says the journal is a lower bound (steps are not synced one by one)', async () => {
    const { createInterruptedReport } = await import('../../../src/agent/engine-adapter.js');
    const lowerBound = (why: string) =>
      `as far as its journal shows; ${why}, and steps are not synced to disk one by one, so later steps may have started; the job was not resumed`;
    const entry = { ...base, steps: [{ index: 0, result: resultA }], running: [{ index: 1, total: 3, name: 'b', startedAt: new Date(0).toISOString() }] };
    const newBoot = createInterruptedReport(entry, 'v', { bootId: 'boot-2', marker: 'marker-2' });
    expect(newBoot.reason).toBe(`interrupted: the agent stopped while step 2 of 3 (b) was running ${lowerBound('the device restarted since (power loss or reboot)')}`);
    expect(newBoot.status_details).toMatchObject({ interrupted: true, journal_may_lag: true, running_steps: [{ index: 2, name: 'b' }] });
    // the same boot_id with a new marker: runtime_dir was emptied, which only a boot does
    expect(createInterruptedReport(entry, 'v', { bootId: 'boot-1', marker: 'marker-2' }).status_details).toMatchObject({ journal_may_lag: true });
    const unknownNow = createInterruptedReport(entry, 'v', null);
    expect(unknownNow.reason).toContain(lowerBound('it cannot tell whether the device restarted since'));
    const olderFile = createInterruptedReport({ ...entry, boot: null }, 'v', SAME);
    expect(olderFile.reason).toBe(unknownNow.reason);
    expect(createInterruptedReport(entry, 'v', SAME)).toMatchObject({
      reason: 'interrupted: the agent stopped while step 2 of 3 (b) was running; the job was not resumed',
      status_details: { journal_may_lag: false },
    });
  });
});
