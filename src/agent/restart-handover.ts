// Handing a running job to the next agent process: on SIGTERM, when root
// restarts the agent (stop-cause.ts), the job is not drained but journaled
// RESTARTING once none of its steps runs or starts (handover.ts decides when),
// and the next agent runs the rest (job-path.ts).
import type { Clock } from '../clock/clock.js';
import { describeError } from '../errors/errors.js';
import type { NormalizedJob } from '../jobs/types.js';
import type { JobOffer } from '../contract/types.js';
import type { Log } from '../log/log.js';
import type { Journal } from '../state/journal.js';
import { handOverBlocker, plannedRuns } from './handover.js';
import type { JobRunPort } from './ports.js';
import type { PlannedRun, StopCause } from './stop-cause.js';

/** A job to hand over once no step of it runs. */
export interface Handover {
  cause: Exclude<StopCause, { kind: 'outside' }>;
  /** Journaled: no step result or start may be recorded any more. */
  journaled: boolean;
}

/** The running job as the hand-over sees it (the agent's record of it). */
export interface HandoverJob {
  offer: JobOffer;
  job: NormalizedJob;
  run: JobRunPort | null;
  handover: Handover | null;
  /** onStepStart hooks in flight: a step between its start hook and its journal record. */
  starting: number;
  /** Called once the job is journaled RESTARTING. */
  handedOver(): void;
}

/** What the hand-over needs. */
export interface HandoverOptions {
  clock: Clock;
  log: Log;
  journal: Journal;
  version: string;
  /** Why the agent stops, from root's word only. */
  stopCause(running: readonly PlannedRun[]): Promise<StopCause>;
}

/** Decides and performs hand-overs. */
export interface RestartHandover {
  /** SIGTERM while `job` runs: hand it over if root restarts the agent and `stillDraining()` holds once that is known. */
  decide(job: HandoverJob, stillDraining: () => boolean): Promise<void>;
  /** Journals `job` RESTARTING if it is to be handed over and none of its steps runs or starts now. */
  tryNow(job: HandoverJob): Promise<void>;
}

/** Creates the hand-over. */
export function createRestartHandover(options: HandoverOptions): RestartHandover {
  const { clock, log, journal } = options;

  const tryNow = async (job: HandoverJob): Promise<void> => {
    const handover = job.handover;
    if (handover === null || handover.journaled) return;
    const { offer } = job;
    const entry = journal.get(offer.jobId);
    if (!entry) return;
    const blocker = handOverBlocker(entry, job.starting);
    if (blocker !== null) {
      if ('never' in blocker) {
        log.info(`job ${offer.jobName} is not handed over (${blocker.never}): it ends in this agent process`, { jobId: offer.jobId });
        job.handover = null;
      }
      return;
    }
    handover.journaled = true;
    try {
      const last = entry.steps[entry.steps.length - 1];
      await journal.recordReboot(offer.jobId, {
        kind: 'restart',
        agentVersion: options.version,
        requestedAt: new Date(clock.now()).toISOString(),
        bootId: null,
        marker: 'restart',
        resumeAt: entry.steps.length,
        stepLabel: last ? `step ${last.index + 1} ("${last.result.name.slice(0, 200)}")` : 'the job',
      });
    } catch (error) {
      log.error(`could not journal job ${offer.jobName} as RESTARTING (${describeError(error)}); it is reported interrupted at the next start`, { jobId: offer.jobId });
    }
    job.handedOver();
  };

  return {
    tryNow,
    async decide(job, stillDraining) {
      const fields = { jobId: job.offer.jobId, jobName: job.offer.jobName };
      const entry = journal.get(job.offer.jobId);
      let cause: StopCause;
      try {
        cause = await options.stopCause(entry ? plannedRuns(job.job, entry) : []);
      } catch (error) {
        log.warn(`could not tell whether root restarts the agent (${describeError(error)}); job ${job.offer.jobName} drains`, fields);
        return;
      }
      if (cause.kind === 'outside') log.info(`job ${job.offer.jobName} drains: ${cause.evidence}`, fields);
      if (cause.kind === 'outside' || job.run === null || !stillDraining()) return;
      job.handover = { cause, journaled: false };
      if (cause.kind === 'restart-command') {
        log.info(`job ${job.offer.jobName} restarts the agent (${cause.command}; ${cause.evidence}): the step is cut and the job goes on in the next agent process`, fields);
        job.run.stop('shutdown');
      } else {
        log.info(`the agent restarts (${cause.evidence}): job ${job.offer.jobName} starts no further step and goes on in the next agent process once its running steps end`, fields);
      }
      await tryNow(job);
    },
  };
}
