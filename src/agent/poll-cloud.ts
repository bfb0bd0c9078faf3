// One poll of the cloud: its answer, or its failure turned into a backoff
// (the scheduler's delay). A failure is logged once per change of problem,
// loudly when a person must act; the outcome goes to status and the metrics.
import type { Clock } from '../clock/clock.js';
import type { PollScheduler } from '../cloud/backoff.js';
import type { CloudClient } from '../cloud/client.js';
import type { RefusedOffer } from '../cloud/parse-answer.js';
import type { JobOffer } from '../contract/types.js';
import type { Log } from '../log/log.js';
import type { AgentObserver } from './ports.js';
import type { StatusSink } from './status.js';
import { asCloudFailure, formatDelay, type CloudFailure } from './words.js';

/** What one poll brought: how long to wait after it, and the offer (taken or refused), if any. */
export interface PollOutcome {
  delay: number;
  state: 'idle' | 'backoff';
  offer: JobOffer | null;
  refused: RefusedOffer | null;
}

/** What the poller needs. */
export interface CloudPollerOptions {
  clock: Clock;
  log: Log;
  cloud: Pick<CloudClient, 'nextJob' | 'generation'>;
  scheduler: PollScheduler;
  status: Pick<StatusSink, 'update'>;
  observer?: AgentObserver;
  /** Called as the request starts (the wake gate: wake-ups so far are served by it). */
  onPollStart(): void;
}

/** Polls the cloud once per call. */
export interface CloudPoller {
  /** One poll; null when `signal` aborted it (nothing was learnt). */
  poll(signal: AbortSignal): Promise<PollOutcome | null>;
}

/** Creates the poller. */
export function createCloudPoller(options: CloudPollerOptions): CloudPoller {
  const { clock, log, cloud, scheduler, status } = options;
  let lastProblem: string | null = null;

  // Logs a cloud problem once per change of problem (test/cloud/CONTRACT.md "Authentication": auth errors once per change).
  const noteProblem = (failure: CloudFailure, delay: number): void => {
    const key = `${failure.kind}:${failure.status ?? ''}:${failure.serverMessage ?? failure.message}`;
    const fields = { cloudStatus: failure.status ?? failure.kind };
    if (key === lastProblem) {
      log.debug(`polling for jobs failed again: ${failure.message}; retrying in ${formatDelay(delay)}`, fields);
      return;
    }
    lastProblem = key;
    // TLS (pin mismatch, unknown CA) and auth problems need a person: say them loudly
    const loud = failure.kind === 'tls' || failure.kind === 'auth' || failure.kind === 'device-unknown';
    log[loud ? 'error' : 'warn'](`polling for jobs failed: ${failure.message}; retrying in ${formatDelay(delay)}`, fields);
  };

  return {
    // Only the cloud call is inside the try: nothing after it is a cloud failure.
    async poll(signal) {
      const none: PollOutcome = { delay: 0, state: 'idle', offer: null, refused: null };
      let outcome: PollOutcome;
      let lastPoll: { at: number; outcome: string };
      try {
        options.onPollStart();
        const answer = await cloud.nextJob(signal);
        if (lastProblem !== null) log.info('the cloud answers again', { cloudStatus: 'ok' });
        lastProblem = null;
        lastPoll = { at: clock.now(), outcome: answer.kind === 'none' ? 'no job' : 'job' };
        status.update({ generation: cloud.generation(), lastPoll });
        if (answer.kind === 'job') outcome = { ...none, offer: answer.offer };
        else if (answer.kind === 'refused') outcome = { ...none, refused: answer };
        else outcome = { ...none, delay: scheduler.afterIdle() };
        if (answer.kind === 'none') log.debug(`no pending job; polling again in ${outcome.delay}ms`);
      } catch (error) {
        if (signal.aborted) return null;
        const failure = asCloudFailure(error);
        const delay = scheduler.afterFailure(failure);
        lastPoll = { at: clock.now(), outcome: failure.kind };
        status.update({ lastPoll });
        noteProblem(failure, delay);
        outcome = { ...none, delay, state: 'backoff' };
      }
      if (!signal.aborted) options.observer?.polled(lastPoll);
      return outcome;
    },
  };
}
