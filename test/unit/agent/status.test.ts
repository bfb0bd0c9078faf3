// The status sink: describeStatus is a pure function of a snapshot, and the
// sink writes the file only when something an operator would see changed.
import { describe, expect, it } from 'vitest';
import { createStatusSink, describeStatus, type AgentStatus, type StatusSnapshot } from '../../../src/agent/status.js';
import { createManualClock } from '../../../src/clock/clock.js';
import { createNullLog } from '../../../src/log/log.js';

const base: AgentStatus = {
  agentVersion: '1.0.0',
  pid: 1,
  state: 'idle',
  degraded: null,
  polling: true,
  disabledReason: null,
  identitySource: 'config',
  generation: 'devices',
  currentJob: null,
  lastPoll: { at: 10_000, outcome: 'no job' },
  nextPollAt: null,
  outbox: { count: 0, bytes: 0, oldestAgeSeconds: null },
  reports: { delivered: 0, refused: 0, retried: 0, cut: 0 },
  updatedAt: 0,
  push: null,
  hold: null,
  limits: null,
};

function snapshot(status: Partial<AgentStatus>, extras: Partial<StatusSnapshot['extras']> = {}): StatusSnapshot {
  return {
    status: { ...base, ...status },
    extras: { failed: null, statusFault: null, stateProbeIntervalMs: 30_000, draining: null, oldestEnqueuedAt: null, ...extras },
    now: 25_000,
    monotonic: 5000,
  };
}

describe('describeStatus', () => {
  it('says what the agent does from the snapshot alone', () => {
    expect(describeStatus(snapshot({}))).toBe('idle, last poll 15s ago');
    expect(describeStatus(snapshot({ state: 'backoff', nextPollAt: 32_000, lastPoll: { at: 20_000, outcome: 'network' } }))).toBe('cloud unreachable (network), retry in 7s');
    expect(describeStatus(snapshot({ outbox: { count: 2, bytes: 10, oldestAgeSeconds: 1 }, reports: { delivered: 0, refused: 1, retried: 0, cut: 0 } }))).toBe(
      'idle, last poll 15s ago; 2 reports waiting for the cloud; 1 report refused by the cloud',
    );
    expect(describeStatus(snapshot({ state: 'stopping' }, { draining: { jobName: 'update', deadline: 12_400 } }))).toBe('stopping: waiting for job update (7s left)');
    expect(describeStatus(snapshot({ state: 'stopping', outbox: { count: 1, bytes: 1, oldestAgeSeconds: 0 } }))).toBe('stopping: sending 1 queued report');
    expect(describeStatus(snapshot({ state: 'degraded', degraded: '/var/lib/cloudjobs: EROFS: read-only file system' }))).toBe(
      'degraded: /var/lib/cloudjobs: EROFS: read-only file system; taking no new job, checking again every 30s',
    );
  });

  it('puts a fault first: a dead loop, degraded while running, a status file that cannot be written', () => {
    const job = { jobId: 'j', jobName: 'update', step: 'apt', stepIndex: 1, stepCount: 2, startedAt: 0 };
    expect(describeStatus(snapshot({}, { failed: 'the poll loop died: boom' }))).toBe('failed: the poll loop died: boom; exiting to be restarted');
    expect(describeStatus(snapshot({ state: 'running', currentJob: job, degraded: 'd: ENOSPC: full' }))).toBe('degraded: d: ENOSPC: full; running job update (step 1/2: apt)');
    expect(describeStatus(snapshot({}, { statusFault: 'r: EROFS: ro' }))).toBe('idle, last poll 15s ago; cannot write the status file: r: EROFS: ro');
  });
});

describe('createStatusSink', () => {
  it('writes when what an operator sees changes, an unchanged status at most every 15s; STATUS= follows the state', async () => {
    const clock = createManualClock(1_000_000);
    const written: AgentStatus[] = [];
    const told: string[] = [];
    const sink = createStatusSink({
      clock,
      log: createNullLog(),
      notifier: { status: (text) => void told.push(text) },
      write: async (status) => void written.push(status),
      watch: (_signal, writing) => writing,
      initial: { agentVersion: '1.0.0', pid: 1, disabledReason: null, identitySource: 'config', limits: null, stateProbeIntervalMs: 30_000 },
    });
    const settle = () => new Promise((resolve) => setImmediate(resolve));
    sink.setState('idle', { lastPoll: { at: clock.now(), outcome: 'no job' } });
    await settle();
    sink.setState('idle', { lastPoll: { at: clock.now(), outcome: 'no job' }, nextPollAt: clock.now() + 30_000 });
    await settle();
    expect(written.map((s) => s.state)).toEqual(['idle']);
    expect(told).toEqual(['idle, last poll 0s ago', 'idle, last poll 0s ago']);
    await clock.advance(15_000);
    sink.update({ nextPollAt: clock.now() + 30_000 });
    await settle();
    expect(written).toHaveLength(2);
    sink.update({ outbox: { count: 1, bytes: 5, oldestEnqueuedAt: clock.now() - 3000 } });
    await settle();
    expect(written[2]?.outbox).toEqual({ count: 1, bytes: 5, oldestAgeSeconds: 3 });
    expect(written[2]?.describe).toBe('idle, last poll 15s ago; 1 report waiting for the cloud');
    sink.markStopping();
    sink.setState('running');
    expect(sink.state()).toBe('stopping');
    await sink.close();
    sink.update({ polling: false });
    await settle();
    expect(written.map((s) => s.state)).toEqual(['idle', 'idle', 'idle', 'stopping']);
  });
});
