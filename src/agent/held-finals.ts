// Final reports: a job's final report goes to the outbox and the history, in
// that order, and the job then leaves the journal. What the state directory
// cannot take is held in memory: sent directly to the cloud, and stored once
// the disk recovers.
//
// INVARIANTS
// - The job leaves the journal only after the outbox and history hold its
//   final report. So a crash at any point leaves either a journal entry
//   (recovered at start) or an outbox entry (delivered at start), never
//   neither; a journal entry whose job has a final waiting in the outbox (or
//   is in history) was finished, and recovery only removes it (job-path.ts).
//   The final report is not written into the journal entry first: the outbox
//   file is the durable copy, and one more fsynced file replacement per job
//   cost an SD card two ext4 journal commits.
// - A held final is sent directly only once no earlier report of its job waits
//   in the outbox (reports of a job arrive in the order they were made).
import type { Clock } from '../clock/clock.js';
import type { CloudClient } from '../cloud/client.js';
import type { RefusedOffer } from '../cloud/parse-answer.js';
import type { JobOffer, StatusReport } from '../contract/types.js';
import type { Log } from '../log/log.js';
import type { History } from '../state/history.js';
import type { Journal } from '../state/journal.js';
import type { Outbox } from '../state/outbox.js';
import type { DegradedMode } from './degraded.js';
import type { AgentObserver } from './ports.js';
import { asCloudFailure, asLocalFault, formatDelay } from './words.js';

/** A final report to record. */
export interface HeldFinal {
  offer: JobOffer;
  receivedAt: number;
  report: StatusReport;
  /** The job has a journal entry (begin() succeeded) to finish and remove. */
  journaled: boolean;
  /** The cloud has it (sent directly), the outbox has it, or the cloud must not get it (job deleted): not to be sent. */
  delivered: boolean;
}

/** What the finals need. */
export interface FinalsOptions {
  clock: Clock;
  log: Log;
  cloud: Pick<CloudClient, 'sendStatus'>;
  journal: Journal;
  outbox: Outbox;
  history: History;
  degraded: Pick<DegradedMode, 'enter'>;
  observer?: AgentObserver;
  /** The outbox entry being removed after delivery (delivery.ts): not waiting any more. */
  ackPending(): number | null;
  /** How often the poll loop sends held finals again while degraded (for the log). */
  recheckIntervalMs: number;
}

/** Records final reports, holding what the disk cannot take. */
export interface Finals {
  /** Records a job's final report: in memory first, then journal, outbox and history. */
  finish(held: HeldFinal): Promise<void>;
  /** Hands a recovered job's final report to the outbox and history, then forgets its journal entry. */
  settle(offer: JobOffer, receivedAt: number, report: StatusReport): Promise<void>;
  /** Stores every held final again (the disk recovered). */
  storeHeld(): Promise<void>;
  /** Sends held finals the outbox could not take, oldest first, within `budgetMs`. */
  sendHeld(signal: AbortSignal, budgetMs: number): Promise<void>;
  /** Keeps a refused offer (its id cannot name a status URL) in history as REJECTED; nothing is queued. */
  recordRefused(refused: RefusedOffer, report: StatusReport): Promise<void>;
  /** Logs each final still held when the agent stops. */
  reportHeldAtStop(): void;
}

/** Creates the final-report keeper. */
export function createFinals(options: FinalsOptions): Finals {
  const { clock, log, cloud, journal, outbox, history } = options;
  const held = new Map<string, HeldFinal>();

  // A finished job enters history once: that is also when it is counted (AgentObserver).
  const addToHistory = async (offer: JobOffer, receivedAt: number, report: StatusReport): Promise<void> => {
    const now = clock.now();
    await history.add(historyEntry(offer, receivedAt, now, report));
    options.observer?.jobFinished(report.status, Math.max(0, now - receivedAt));
  };

  const store = async (final: HeldFinal): Promise<void> => {
    const { offer, receivedAt, report } = final;
    const jobId = offer.jobId;
    try {
      if (!final.delivered && !history.has(jobId) && !outbox.hasPendingFinal(jobId)) await outbox.enqueue(jobId, report);
      // from here the outbox delivers it: a retry after a later failure must not queue it twice
      final.delivered = true;
      if (!history.has(jobId)) await addToHistory(offer, receivedAt, report);
      if (final.journaled) await journal.remove(jobId);
      held.delete(jobId);
    } catch (error) {
      const fault = asLocalFault(error);
      options.degraded.enter(fault, `storing the ${report.status} report of job ${offer.jobName}`);
      log.warn(`the ${report.status} report of job ${offer.jobName} is held in memory${final.delivered ? '' : ' and sent directly'} until ${fault.path} can be written`, {
        jobId: offer.jobId,
        jobStatus: report.status,
      });
    }
  };

  return {
    async finish(final) {
      held.set(final.offer.jobId, final);
      await store(final);
    },
    async settle(offer, receivedAt, report) {
      if (!history.has(offer.jobId)) {
        if (!outbox.hasPendingFinal(offer.jobId)) await outbox.enqueue(offer.jobId, report);
        await addToHistory(offer, receivedAt, report);
      }
      await journal.remove(offer.jobId);
    },
    async storeHeld() {
      for (const final of [...held.values()]) await store(final);
    },
    async sendHeld(signal, budgetMs) {
      const deadline = clock.monotonic() + budgetMs;
      for (const final of held.values()) {
        if (final.delivered || signal.aborted || clock.monotonic() > deadline) continue;
        if (outbox.entries().some((e) => e.jobId === final.offer.jobId && e.seq !== options.ackPending())) continue;
        const fields = { jobId: final.offer.jobId, jobStatus: final.report.status };
        try {
          const outcome = await cloud.sendStatus(final.offer.jobId, final.report, signal);
          final.delivered = true;
          log.info(`final report ${final.report.status} sent directly (the state directory could not queue it): ${outcome}`, { ...fields, cloudStatus: outcome });
        } catch (error) {
          if (signal.aborted) return;
          log.warn(
            `sending the held ${final.report.status} report directly failed: ${asCloudFailure(error).message}; trying again in ${formatDelay(options.recheckIntervalMs)}`,
            fields,
          );
        }
      }
    },
    async recordRefused(refused, report) {
      await history.add(historyEntry(refused, clock.now(), clock.now(), report));
    },
    reportHeldAtStop() {
      for (const final of held.values()) {
        const where = final.journaled ? 'its journal entry reports it interrupted at the next start' : 'nothing on disk remembers it';
        log.error(
          `stopping with the ${final.report.status} report of job ${final.offer.jobName} ${final.delivered ? 'delivered but not in history' : 'neither stored nor delivered'}: ${where}`,
          { jobId: final.offer.jobId, jobStatus: final.report.status },
        );
      }
    },
  };
}

function historyEntry(offer: Pick<JobOffer, 'jobId' | 'jobName'>, receivedAt: number, finishedAt: number, report: StatusReport) {
  return {
    jobId: offer.jobId,
    jobName: offer.jobName,
    receivedAt: new Date(receivedAt).toISOString(),
    finishedAt: new Date(finishedAt).toISOString(),
    report,
  };
}
