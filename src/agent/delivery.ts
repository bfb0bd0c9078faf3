// Delivery: one loop drains the durable outbox to the cloud, one report at a
// time, oldest first, so the reports of a job arrive in the order they were
// made. A failed send is retried with backoff; a 413 is answered with a
// smaller body (report-cut.ts); a store fault waits in degraded mode.
import type { Clock } from '../clock/clock.js';
import type { RetryBackoff } from '../cloud/backoff.js';
import type { CloudClient, StatusOutcome } from '../cloud/client.js';
import type { Log } from '../log/log.js';
import type { Outbox, OutboxEntry } from '../state/outbox.js';
import type { DegradedMode } from './degraded.js';
import { createReportCutter, type ReportCutter, type TooLargeVerdict } from './report-cut.js';
import type { DeliveryCounts, StatusSink } from './status.js';
import { asCloudFailure, countOf, formatDelay } from './words.js';

/** What delivery needs. */
export interface DeliveryOptions {
  clock: Clock;
  log: Log;
  cloud: Pick<CloudClient, 'sendStatus'>;
  outbox: Outbox;
  retry: RetryBackoff;
  degraded: Pick<DegradedMode, 'untilStored'>;
  status: Pick<StatusSink, 'update'>;
  /** The cloud canceled job `jobId`: true when it is the running job and was stopped now (not before). */
  cancelRunning(jobId: string): boolean;
  /** The cloud no longer knows job `jobId` (404): nothing more is reported for it. */
  forgetRunning(jobId: string): void;
  /** A final report was delivered (the agent may soon be quiet). */
  onFinalDelivered(): void;
}

/** The delivery loop and what the rest of the agent asks of it. */
export interface Delivery {
  /** Drains the outbox until `signal` aborts. */
  run(signal: AbortSignal): Promise<void>;
  /** The outbox entry delivered and being removed, or null: it is not waiting any more. */
  ackPending(): number | null;
  /** Gives queued reports up to `ms` to reach the cloud (best effort: they stay queued either way). */
  waitUntilEmpty(ms: number, signal?: AbortSignal): Promise<void>;
}

/** What the loop keeps between reports. */
interface LoopState {
  cutter: ReportCutter;
  /** The last failure logged, so a repeated one is not logged again. */
  lastProblem: string | null;
}

/** Creates the delivery loop. */
export function createDelivery(options: DeliveryOptions): Delivery {
  const { clock, log, cloud, outbox, retry, degraded, status } = options;
  const counts: DeliveryCounts = { delivered: 0, refused: 0, retried: 0, cut: 0 };
  let ackPending: number | null = null;
  const count = (key: keyof DeliveryCounts): void => {
    counts[key] += 1;
    status.update({ reports: { ...counts } });
  };

  // Logs a 413 and counts it; returns whether the report is given up.
  const onTooLarge = (entry: OutboxEntry, verdict: TooLargeVerdict): boolean => {
    const fields = { jobId: entry.jobId, jobStatus: entry.report.status, cloudStatus: 413 };
    const kept = entry.final ? '; its full result is kept in history (`cloudjobs history`)' : '';
    if (verdict.kind === 'give-up') {
      count('refused');
      log.error(`the cloud refused the ${entry.report.status} report as too large (413) even cut to ${verdict.refusedBytes} bytes; gave it up so later reports are sent${kept}`, fields);
      return true;
    }
    count('cut');
    log.warn(
      `the cloud refused the ${entry.report.status} report of ${verdict.refusedBytes} bytes as too large (413); sending it and later reports cut to at most ${verdict.ceiling} bytes`,
      fields,
    );
    return false;
  };

  const onDelivered = (entry: OutboxEntry, outcome: StatusOutcome): void => {
    if (outcome === 'gone' || outcome === 'refused') count('refused');
    else if (outcome === 'accepted') count('delivered');
    const fields = { jobId: entry.jobId, jobStatus: entry.report.status, cloudStatus: outcome };
    switch (outcome) {
      case 'accepted':
        if (entry.final) {
          log.info(`final report ${entry.report.status} delivered`, fields);
          options.onFinalDelivered();
        } else {
          log.debug(`${entry.report.status} report delivered`, fields);
        }
        return;
      case 'canceled':
        if (options.cancelRunning(entry.jobId)) log.warn('the cloud canceled this job; stopping it', fields);
        else if (entry.final) log.info(`the cloud no longer takes reports for this canceled job; dropped the ${entry.report.status} report`, fields);
        return;
      case 'gone':
        log.warn('the cloud no longer knows this job (Job status not found); nothing more is reported for it', fields);
        options.forgetRunning(entry.jobId);
        return;
      case 'refused':
        log.error(`the cloud refused the ${entry.report.status} report (400); dropped it`, fields);
        return;
      case 'too-large':
        return; // handled before the entry is acknowledged
    }
  };

  // A failed send: count it, log it once per change of problem, and wait the backoff ('stop' when aborted meanwhile).
  const onSendFailed = async (entry: OutboxEntry, error: unknown, state: LoopState, signal: AbortSignal): Promise<'next' | 'stop'> => {
    count('retried');
    const failure = asCloudFailure(error);
    const delay = retry.next(failure);
    const key = `${failure.kind}:${failure.message}`;
    if (key !== state.lastProblem) {
      state.lastProblem = key;
      log.warn(`sending the ${entry.report.status} report failed: ${failure.message}; it stays queued, retrying in ${formatDelay(delay)}`, {
        jobId: entry.jobId,
        jobStatus: entry.report.status,
        cloudStatus: failure.status ?? failure.kind,
      });
    }
    try {
      // a new report does not cut the wait short: keep the server's pace
      await clock.sleep(delay, signal);
    } catch {
      return 'stop';
    }
    return 'next';
  };

  // Sends the oldest waiting report once; 'stop' when the loop must end.
  const deliverNext = async (state: LoopState, signal: AbortSignal): Promise<'empty' | 'next' | 'stop'> => {
    const entry = await degraded.untilStored('reading the outbox', () => outbox.next(), signal);
    if (!entry) return 'empty';
    const body = state.cutter.bodyFor(entry.report);
    let outcome: StatusOutcome;
    try {
      outcome = await cloud.sendStatus(entry.jobId, body, signal);
    } catch (error) {
      if (signal.aborted) return 'stop';
      return onSendFailed(entry, error, state, signal);
    }
    if (outcome === 'too-large') {
      // never the same body again: cut it, or give it up so later reports go out
      if (onTooLarge(entry, state.cutter.onTooLarge(body))) {
        await degraded.untilStored('removing a given-up report from the outbox', () => outbox.ack(entry.seq), signal);
      }
      return 'next';
    }
    if (state.lastProblem !== null) log.info('reports are delivered again', { jobId: entry.jobId, jobStatus: entry.report.status, cloudStatus: outcome });
    state.lastProblem = null;
    retry.reset();
    // delivered: if the removal fails (read-only disk) retry only the removal, never the send
    ackPending = entry.seq;
    await degraded.untilStored('removing a delivered report from the outbox', () => outbox.ack(entry.seq), signal);
    ackPending = null;
    onDelivered(entry, outcome);
    return 'next';
  };

  return {
    async run(signal) {
      const state: LoopState = { cutter: createReportCutter(), lastProblem: null };
      while (!signal.aborted) {
        // The report lives only in deliverNext's frame: this one stays suspended
        // while the loop waits, and would keep the last report (megabytes after
        // a job with much output) alive until the next one.
        const step = await deliverNext(state, signal);
        if (step === 'stop') break;
        if (step === 'empty') {
          try {
            await outbox.waitForEntry(signal);
          } catch (error) {
            if (signal.aborted) break;
            throw error;
          }
        }
      }
    },
    ackPending: () => ackPending,
    async waitUntilEmpty(ms, signal) {
      const deadline = clock.monotonic() + ms;
      while (outbox.stats().count > 0 && clock.monotonic() < deadline) {
        try {
          await clock.sleep(50, signal);
        } catch {
          return;
        }
      }
    },
  };
}

/** Logs what stays queued at stop. */
export function reportLeftAtStop(outbox: Outbox, log: Log): void {
  const left = outbox.stats().count;
  if (left > 0) log.info(`stopping with ${countOf(left, 'report')} still queued; they are sent at the next start`);
}
