import { describe, expect, it } from 'vitest';
import { createManualClock } from '../../../src/clock/clock.js';
import { createWatchdog, isPollLoopHealthy, parseWatchdogInterval } from '../../../src/service/health.js';
import type { Log } from '../../../src/log/log.js';

describe('isPollLoopHealthy', () => {
  const base = { intervalMs: 30_000, backoffUntil: null };
  it('is healthy while progress is at most two intervals old', () => {
    expect(isPollLoopHealthy({ ...base, now: 100_000, lastProgressAt: 40_000 })).toBe(true);
    expect(isPollLoopHealthy({ ...base, now: 100_000, lastProgressAt: 39_999 })).toBe(false);
  });
  it('is healthy inside a deliberate backoff and two intervals after it', () => {
    const progress = { intervalMs: 30_000, lastProgressAt: 0, backoffUntil: 300_000 };
    expect(isPollLoopHealthy({ ...progress, now: 299_000 })).toBe(true);
    expect(isPollLoopHealthy({ ...progress, now: 360_000 })).toBe(true);
    expect(isPollLoopHealthy({ ...progress, now: 360_001 })).toBe(false);
  });
});

describe('parseWatchdogInterval', () => {
  it('pings at half of WATCHDOG_USEC', () => {
    expect(parseWatchdogInterval('60000000', undefined, 42)).toBe(30_000);
    expect(parseWatchdogInterval('3000000', '42', 42)).toBe(1500);
  });
  it('ignores a watchdog meant for another process or malformed values', () => {
    expect(parseWatchdogInterval('60000000', '41', 42)).toBeNull();
    expect(parseWatchdogInterval(undefined, undefined, 42)).toBeNull();
    expect(parseWatchdogInterval('0', undefined, 42)).toBeNull();
    expect(parseWatchdogInterval('60s', undefined, 42)).toBeNull();
  });
});

function recordingLog(): Log & { lines: string[] } {
  const lines: string[] = [];
  const log: Log & { lines: string[] } = {
    lines,
    error: (m) => void lines.push(`error ${m}`),
    warn: (m) => void lines.push(`warn ${m}`),
    info: (m) => void lines.push(`info ${m}`),
    debug: (m) => void lines.push(`debug ${m}`),
    child: () => log,
  };
  return log;
}

describe('createWatchdog', () => {
  it('pings once per interval only while healthy, through the injected clock', async () => {
    const clock = createManualClock(0);
    const controller = new AbortController();
    let healthy = true;
    const pings: number[] = [];
    const log = recordingLog();
    const watchdog = createWatchdog({
      intervalMs: 1000,
      clock,
      isHealthy: () => healthy,
      notifier: { watchdog: () => void pings.push(clock.now()) },
      signal: controller.signal,
      log,
    });
    await clock.advance(0);
    expect(pings).toEqual([0]);
    await clock.advance(2000);
    expect(pings).toEqual([0, 1000, 2000]);
    healthy = false;
    await clock.advance(3000);
    expect(pings).toEqual([0, 1000, 2000]);
    healthy = true;
    await clock.advance(1000);
    expect(pings).toEqual([0, 1000, 2000, 6000]);
    expect(log.lines).toEqual([
      'warn health check failed; withholding WATCHDOG=1 so systemd restarts a hung agent',
      'info health check passes again; resuming watchdog pings',
    ]);
    controller.abort();
    await watchdog.done;
    expect(clock.pending()).toBe(0);
    await clock.advance(5000);
    expect(pings).toHaveLength(4);
  });

  it('treats a throwing health check as unhealthy', async () => {
    const clock = createManualClock(0);
    const controller = new AbortController();
    let pings = 0;
    const watchdog = createWatchdog({
      intervalMs: 500,
      clock,
      isHealthy: () => {
        throw new Error('boom');
      },
      notifier: { watchdog: () => void (pings += 1) },
      signal: controller.signal,
    });
    await clock.advance(2000);
    expect(pings).toBe(0);
    controller.abort();
    await watchdog.done;
  });

  it('ends at once when the signal is already aborted and rejects a non-positive interval', async () => {
    const controller = new AbortController();
    controller.abort();
    let pings = 0;
    const clock = createManualClock(0);
    await createWatchdog({ intervalMs: 1000, clock, isHealthy: () => true, notifier: { watchdog: () => void (pings += 1) }, signal: controller.signal }).done;
    expect(pings).toBe(0);
    expect(() =>
      createWatchdog({ intervalMs: 0, clock, isHealthy: () => true, notifier: { watchdog() {} }, signal: controller.signal }),
    ).toThrow('watchdog interval must be a positive number of ms, got 0');
  });
});
