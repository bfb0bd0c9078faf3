import { describe, expect, it } from 'vitest';
import {
  computeBackoffStep,
  computeFailureDelay,
  createPollScheduler,
  createRetryBackoff,
  parseRetryAfter,
} from '../../../src/cloud/backoff.js';
import { CloudError } from '../../../src/cloud/cloud-error.js';

const network = new CloudError('network', 'connection refused');

function sequence(...values: number[]): () => number {
  let i = 0;
  return () => {
    const value = values[i % values.length]!;
    i += 1;
    return value;
  };
}

describe('computeBackoffStep', () => {
  it('doubles from 1s and stops at the maximum', () => {
    const steps = Array.from({ length: 12 }, (_, i) => computeBackoffStep(i + 1, 300_000));
    expect(steps).toEqual([1000, 2000, 4000, 8000, 16000, 32000, 64000, 128000, 256000, 300000, 300000, 300000]);
    expect(computeBackoffStep(10_000, 300_000)).toBe(300_000);
  });
});

describe('createPollScheduler', () => {
  it('backs off with full jitter: uniform in [0, step]', () => {
    const top = createPollScheduler({ intervalMs: 30_000, jitter: 0.1, maxBackoffMs: 300_000, random: () => 0.999999 });
    expect(Array.from({ length: 11 }, () => top.afterFailure(network))).toEqual([
      1000, 2000, 4000, 8000, 16000, 32000, 64000, 128000, 256000, 300000, 300000,
    ]);
    expect(top.failures()).toBe(11);
    const half = createPollScheduler({ intervalMs: 30_000, jitter: 0.1, maxBackoffMs: 300_000, random: () => 0.5 });
    expect(Array.from({ length: 5 }, () => half.afterFailure(network))).toEqual([500, 1000, 2000, 4000, 8000]);
    const bottom = createPollScheduler({ intervalMs: 30_000, jitter: 0.1, maxBackoffMs: 300_000, random: () => 0 });
    expect(Array.from({ length: 3 }, () => bottom.afterFailure(network))).toEqual([0, 0, 0]);
  });

  it('starts over at 1s after a success, an idle poll or a job', () => {
    const s = createPollScheduler({ intervalMs: 30_000, jitter: 0, maxBackoffMs: 300_000, random: () => 0.5 });
    s.afterFailure(network);
    s.afterFailure(network);
    s.afterSuccess();
    expect(s.failures()).toBe(0);
    expect(s.afterFailure(network)).toBe(500);
    s.afterFailure(network);
    expect(s.afterIdle()).toBe(30_000);
    expect(s.afterFailure(network)).toBe(500);
    expect(s.afterJob()).toBe(0);
    expect(s.failures()).toBe(0);
  });

  it('spreads idle polls over interval*(1±jitter) and never outside', () => {
    const low = createPollScheduler({ intervalMs: 30_000, jitter: 0.1, maxBackoffMs: 300_000, random: () => 0 });
    const high = createPollScheduler({ intervalMs: 30_000, jitter: 0.1, maxBackoffMs: 300_000, random: () => 0.999999 });
    expect(low.afterIdle()).toBe(27_000);
    expect(high.afterIdle()).toBe(33_000);
    let seed = 42;
    const lcg = (): number => {
      seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31;
      return seed / 2 ** 31;
    };
    const s = createPollScheduler({ intervalMs: 30_000, jitter: 0.1, maxBackoffMs: 300_000, random: lcg });
    const delays = Array.from({ length: 2000 }, () => s.afterIdle());
    expect(Math.min(...delays)).toBeGreaterThanOrEqual(27_000);
    expect(Math.max(...delays)).toBeLessThanOrEqual(33_000);
    // both halves of the window are used
    expect(delays.some((d) => d < 28_000)).toBe(true);
    expect(delays.some((d) => d > 32_000)).toBe(true);
  });

  it('polls again at once after a job', () => {
    const s = createPollScheduler({ intervalMs: 30_000, jitter: 0.1, maxBackoffMs: 300_000, random: () => 0.7 });
    expect([s.afterJob(), s.afterJob(), s.afterJob()]).toEqual([0, 0, 0]);
  });

  it('waits max_backoff (minus at most the jitter) after auth, unknown-device and TLS errors', () => {
    const s = createPollScheduler({ intervalMs: 30_000, jitter: 0.1, maxBackoffMs: 300_000, random: sequence(0, 0.5, 0.999999) });
    expect(s.afterFailure(new CloudError('auth', 'x', { status: 401 }))).toBe(300_000);
    expect(s.afterFailure(new CloudError('device-unknown', 'x', { status: 404 }))).toBe(285_000);
    expect(s.afterFailure(new CloudError('tls', 'pin mismatch'))).toBe(270_000);
  });

  it('never waits less than Retry-After, and spreads above it by the backoff step', () => {
    const s = createPollScheduler({ intervalMs: 30_000, jitter: 0.1, maxBackoffMs: 300_000, random: sequence(0, 0.5, 0.5) });
    const limited = new CloudError('rate-limited', 'x', { status: 429, retryAfterMs: 60_000 });
    expect(s.afterFailure(limited)).toBe(60_000); // attempt 1, random 0
    expect(s.afterFailure(limited)).toBe(61_000); // attempt 2: step 2s * 0.5
    expect(s.afterFailure(new CloudError('server', 'x', { status: 503, retryAfterMs: 500_000 }))).toBe(500_000); // beyond max: exactly as asked
  });
});

describe('computeFailureDelay', () => {
  it('caps Retry-After spreading at max_backoff', () => {
    expect(computeFailureDelay(9, { retryAfterMs: 299_000 }, { maxBackoffMs: 300_000, jitter: 0.1, random: () => 0.999 })).toBe(300_000);
    expect(computeFailureDelay(1, { retryAfterMs: 0 }, { maxBackoffMs: 300_000, jitter: 0.1, random: () => 0.5 })).toBe(500);
  });
});

describe('createRetryBackoff', () => {
  it('follows the same 1s, 2s, 4s schedule for report delivery and resets', () => {
    const b = createRetryBackoff({ maxBackoffMs: 10_000, random: () => 0.999999 });
    expect(Array.from({ length: 6 }, () => b.next(network))).toEqual([1000, 2000, 4000, 8000, 10000, 10000]);
    expect(b.attempts()).toBe(6);
    b.reset();
    expect(b.next()).toBe(1000);
    expect(b.next(new CloudError('auth', 'x'))).toBe(10_000);
  });
});

describe('parseRetryAfter', () => {
  const now = Date.parse('2026-11-28T10:00:00Z');
  it('reads delay-seconds', () => {
    expect(parseRetryAfter('120', now)).toBe(120_000);
    expect(parseRetryAfter(' 0 ', now)).toBe(0);
  });
  it('reads an HTTP date relative to now, and a past date as 0', () => {
    expect(parseRetryAfter('Sat, 28 Nov 2026 10:01:30 GMT', now)).toBe(90_000);
    expect(parseRetryAfter('Sat, 28 Nov 2026 09:59:00 GMT', now)).toBe(0);
  });
  it('returns null for absent or malformed values', () => {
    expect(parseRetryAfter(null, now)).toBeNull();
    expect(parseRetryAfter(undefined, now)).toBeNull();
    expect(parseRetryAfter('', now)).toBeNull();
    expect(parseRetryAfter('-5', now)).toBeNull();
    expect(parseRetryAfter('1.5', now)).toBeNull();
    expect(parseRetryAfter('soon', now)).toBeNull();
    expect(parseRetryAfter('12abc', now)).toBeNull();
  });
});
