// The agent's metrics: counters fed by the agent as things happen (polls,
// finished jobs) and gauges read from its status. Rendered for /metrics and
// the textfile alike.
import type { AgentObserver } from '../agent/ports.js';
import type { AgentStatus } from '../agent/status.js';
import { FINAL_STATUSES } from '../contract/types.js';
import { renderExposition, type Family } from './exposition.js';

/** Upper bounds of the job duration histogram, in seconds. */
export const JOB_DURATION_BUCKETS = [1, 5, 15, 60, 300, 900, 3600, 14_400] as const;
// Poll outcomes come from the agent's code, not the server; bounded all the same.
const MAX_POLL_OUTCOMES = 16;

/** The status fields the gauges read. */
export type MetricStatus = Pick<AgentStatus, 'outbox' | 'degraded' | 'push' | 'hold' | 'currentJob'>;

/** The metrics of one agent process. */
export interface AgentMetrics extends AgentObserver {
  /** The metrics in the text format, gauges from `status`. */
  render(status: MetricStatus | null): string;
  /**
   * What the textfile is rewritten for: everything but the idle poll counters
   * and the last poll time (those change with every poll).
   */
  significantKey(status: MetricStatus | null): string;
}

/** Creates the metrics; `version` and `runtime` go into cloudjobs_info. */
export function createAgentMetrics(info: { version: string; runtime: string }): AgentMetrics {
  const jobs = new Map<string, number>([...FINAL_STATUSES].map((s) => [s.toLowerCase(), 0]));
  const polls = new Map<string, number>();
  const durationCounts: number[] = JOB_DURATION_BUCKETS.map(() => 0);
  let durationSum = 0;
  let durationCount = 0;
  let lastSuccessAt: number | null = null;
  let lastOutcome = '';

  const gauges = (status: MetricStatus | null) => ({
    outbox: status?.outbox.count ?? 0,
    degraded: status?.degraded ? 1 : 0,
    push: status?.push?.state === 'connected' ? 1 : 0,
    held: status?.hold?.held ? 1 : 0,
    running: status?.currentJob ? 1 : 0,
  });

  return {
    polled(poll) {
      const outcome = poll.outcome.toLowerCase().replace(/[^a-z0-9]+/g, '_');
      if (polls.has(outcome) || polls.size < MAX_POLL_OUTCOMES) polls.set(outcome, (polls.get(outcome) ?? 0) + 1);
      if (outcome === 'job' || outcome === 'no_job') lastSuccessAt = poll.at;
      lastOutcome = outcome === 'no_job' ? 'job' : outcome;
    },
    jobFinished(status, durationMs) {
      const key = status.toLowerCase();
      jobs.set(key, (jobs.get(key) ?? 0) + 1);
      const seconds = durationMs / 1000;
      const bucket = JOB_DURATION_BUCKETS.findIndex((bound) => seconds <= bound);
      if (bucket >= 0) durationCounts[bucket] = (durationCounts[bucket] ?? 0) + 1;
      durationSum += seconds;
      durationCount += 1;
    },
    significantKey(status) {
      // "job" and "no job" are one outcome here: an idle poll must not rewrite the file
      return JSON.stringify([[...jobs], durationCount, lastOutcome, gauges(status)]);
    },
    render(status) {
      const g = gauges(status);
      const families: Family[] = [
        { name: 'cloudjobs_jobs_total', help: 'Jobs that ended, by final status.', type: 'counter', samples: [...jobs].map(([s, value]) => ({ labels: { status: s }, value })) },
        {
          name: 'cloudjobs_job_duration_seconds',
          help: 'Time from taking a job to its final report.',
          type: 'histogram',
          buckets: JOB_DURATION_BUCKETS,
          counts: durationCounts,
          sum: durationSum,
          count: durationCount,
        },
        { name: 'cloudjobs_polls_total', help: 'Polls for a job, by outcome (job, no_job, or the failure).', type: 'counter', samples: [...polls].map(([outcome, value]) => ({ labels: { outcome }, value })) },
        {
          name: 'cloudjobs_last_poll_success_timestamp_seconds',
          help: 'When the cloud last answered a poll (seconds since the epoch; 0: not yet).',
          type: 'gauge',
          samples: [{ value: lastSuccessAt === null ? 0 : Math.floor(lastSuccessAt / 1000) }],
        },
        { name: 'cloudjobs_outbox_reports', help: 'Reports waiting to be delivered to the cloud.', type: 'gauge', samples: [{ value: g.outbox }] },
        { name: 'cloudjobs_degraded', help: '1 while the state directory cannot be written (no new job is taken).', type: 'gauge', samples: [{ value: g.degraded }] },
        { name: 'cloudjobs_push_connected', help: '1 while the MQTT push channel is connected.', type: 'gauge', samples: [{ value: g.push }] },
        { name: 'cloudjobs_held', help: '1 while no new job is taken because of a hold or outside the maintenance windows.', type: 'gauge', samples: [{ value: g.held }] },
        { name: 'cloudjobs_job_running', help: '1 while a job runs.', type: 'gauge', samples: [{ value: g.running }] },
        { name: 'cloudjobs_info', help: 'The agent version and runtime.', type: 'gauge', samples: [{ labels: { version: info.version, runtime: info.runtime }, value: 1 }] },
      ];
      return renderExposition(families);
    },
  };
}
