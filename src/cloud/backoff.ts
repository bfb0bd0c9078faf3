// Poll scheduling as pure arithmetic: no clock, no timers, only "how long to
// wait next" from what just happened and an injected random source, so the
// agent loop, report delivery and a 1,000-agent simulation share one code path.
//
// Why full jitter for failures: after an outage every agent of a fleet sits at
// the top of its schedule. With full jitter (uniform in [0, step]) their retries
// spread evenly over the whole step, so the first minutes after recovery see
// N/step requests per second; equal jitter (step/2 + uniform [0, step/2]) packs
// them into half the window, doubling the peak. Retry-After is a floor that is
// spread upwards by the same jitter, so agents told "60" do not all return at 60.

/** Random source in [0, 1); Math.random in production, a fixed sequence in tests. */
export type RandomSource = () => number;

/** The failure facts the scheduler looks at (a CloudError or a RegistrationError fits). */
export interface FailureFacts {
  kind?: string;
  status?: number;
  retryAfterMs?: number;
}

/** The first retry step; each failure doubles it up to maxBackoffMs. */
export const BASE_BACKOFF_MS = 1000;

/** Failure kinds that retrying soon cannot fix: they wait the maximum backoff. */
const SLOW_KINDS = new Set(['auth', 'device-unknown', 'tls', 'provisioning-key']);

/** Returns the un-jittered step for the `attempt`-th consecutive failure (1-based): 1s, 2s, 4s, ... capped. */
export function computeBackoffStep(attempt: number, maxBackoffMs: number): number {
  const exponent = Math.min(Math.max(attempt, 1) - 1, 40);
  return Math.min(BASE_BACKOFF_MS * 2 ** exponent, maxBackoffMs);
}

/** Returns a full-jitter delay for the `attempt`-th consecutive failure: uniform in [0, step]. */
export function computeBackoffDelay(attempt: number, maxBackoffMs: number, random: RandomSource): number {
  return Math.round(random() * computeBackoffStep(attempt, maxBackoffMs));
}

/**
 * Parses a Retry-After header (delay-seconds or an HTTP date) into ms from
 * `nowMs`; null when absent or unparsable. A date in the past gives 0.
 */
export function parseRetryAfter(value: string | null | undefined, nowMs: number): number | null {
  if (value === null || value === undefined) return null;
  const text = value.trim();
  if (text === '') return null;
  if (/^\d+$/.test(text)) return Number(text) * 1000;
  if (/^\d/.test(text) || !/[A-Za-z]/.test(text)) return null;
  const at = Date.parse(text);
  if (Number.isNaN(at)) return null;
  return Math.max(0, at - nowMs);
}

/** Options of createPollScheduler. */
export interface PollSchedulerOptions {
  /** polling.interval */
  intervalMs: number;
  /** polling.jitter as a fraction 0..1: idle waits spread over interval*(1±jitter). */
  jitter: number;
  /** polling.max_backoff */
  maxBackoffMs: number;
  random: RandomSource;
}

/** Decides the wait before the next poll; every method returns ms. */
export interface PollScheduler {
  /** The server had no job: wait the interval, spread by jitter. Resets the failure count. */
  afterIdle(): number;
  /** A job just finished: poll again at once (a queue drains back to back). Resets the failure count. */
  afterJob(): number;
  /** A poll failed: exponential full-jitter backoff; Retry-After is a floor; auth, unknown device and TLS wait max_backoff. */
  afterFailure(error: unknown): number;
  /** Forgets past failures (any successful exchange). */
  afterSuccess(): void;
  /** Consecutive failures so far. */
  failures(): number;
}

/** Creates a scheduler; it holds only the failure count. */
export function createPollScheduler(options: PollSchedulerOptions): PollScheduler {
  const { intervalMs, maxBackoffMs, random } = options;
  const jitter = Math.min(Math.max(options.jitter, 0), 1);
  let failures = 0;
  return {
    afterIdle() {
      failures = 0;
      return Math.round(intervalMs * (1 - jitter + 2 * jitter * random()));
    },
    afterJob() {
      failures = 0;
      return 0;
    },
    afterFailure(error) {
      failures += 1;
      return computeFailureDelay(failures, readFacts(error), { maxBackoffMs, jitter, random });
    },
    afterSuccess() {
      failures = 0;
    },
    failures: () => failures,
  };
}

/**
 * Returns the wait after the `attempt`-th consecutive failure described by
 * `facts` (shared by polling, registration and report delivery).
 */
export function computeFailureDelay(
  attempt: number,
  facts: FailureFacts,
  options: { maxBackoffMs: number; jitter: number; random: RandomSource },
): number {
  const { maxBackoffMs, jitter, random } = options;
  if (facts.retryAfterMs !== undefined && facts.retryAfterMs >= 0) {
    // never earlier than asked; spread later by up to one backoff step
    const spread = computeBackoffDelay(attempt, maxBackoffMs, random);
    return facts.retryAfterMs + Math.min(spread, Math.max(maxBackoffMs - facts.retryAfterMs, 0));
  }
  if (facts.kind !== undefined && SLOW_KINDS.has(facts.kind)) {
    return Math.round(maxBackoffMs * (1 - jitter * random()));
  }
  return computeBackoffDelay(attempt, maxBackoffMs, random);
}

function readFacts(error: unknown): FailureFacts {
  if (typeof error !== 'object' || error === null) return {};
  const source = error as Record<string, unknown>;
  const facts: FailureFacts = {};
  if (typeof source.kind === 'string') facts.kind = source.kind;
  if (typeof source.status === 'number') facts.status = source.status;
  if (typeof source.retryAfterMs === 'number') facts.retryAfterMs = source.retryAfterMs;
  return facts;
}

/** Retry pacing for one thing delivered again and again (a report): same schedule as polling. */
export interface RetryBackoff {
  /** The wait after one more failure. */
  next(error?: unknown): number;
  reset(): void;
  attempts(): number;
}

/** Creates a RetryBackoff (1s, 2s, 4s, ... capped, full jitter, Retry-After honoured). */
export function createRetryBackoff(options: { maxBackoffMs: number; random: RandomSource }): RetryBackoff {
  let attempts = 0;
  return {
    next(error) {
      attempts += 1;
      return computeFailureDelay(attempts, readFacts(error), { ...options, jitter: 0 });
    },
    reset() {
      attempts = 0;
    },
    attempts: () => attempts,
  };
}
