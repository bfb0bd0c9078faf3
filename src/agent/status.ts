// What `cloudjobs status` and systemd's STATUS= show. The agent's modules push
// facts into the sink; the sink never asks them anything back. describeStatus
// is a pure function of a snapshot, so the sentence can be tested alone.
//
// INVARIANTS
// - The status file is written when something an operator would see changed
//   (statusKey), else at most every STATUS_REFRESH_MS: idle polls do not cost a
//   file write each. Writes never overlap and the last state always lands.
// - After close() no write starts (the caller removes the file after run()).
import type { Clock } from '../clock/clock.js';
import type { PushStatus } from '../cloud/push-settings.js';
import type { ApiGeneration } from '../contract/types.js';
import type { Log } from '../log/log.js';
import type { Outbox } from '../state/outbox.js';
import type { JobGateStatus } from './job-gate.js';
import type { JobLimits } from './job-limits.js';
import { asLocalFault, countOf, formatDelay } from './words.js';

/** The agent's state, as `cloudjobs status` shows it. */
export type AgentState = 'starting' | 'idle' | 'running' | 'rebooting' | 'backoff' | 'degraded' | 'disabled' | 'stopping' | 'held';

/** The job the agent works on, as status shows it. */
export interface CurrentJobStatus {
  jobId: string;
  jobName: string;
  step: string | null;
  stepIndex: number;
  stepCount: number;
  startedAt: number;
  /** Reboots the job went through so far (it runs on after them). */
  reboots?: number;
  /** status_details.limits of the last progress report: the limits in force and the peak memory so far. */
  limits?: unknown;
}

/** What the delivery loop did since the agent started. */
export interface DeliveryCounts {
  delivered: number;
  /** Dropped: the API's own refusal (400 "status is required", 404 "Job status not found"), or still too large at the smallest size. */
  refused: number;
  /** Sends that failed and were tried again later (network, 5xx, HTML or unknown 4xx answers). */
  retried: number;
  /** Sends answered 413 and sent again smaller. */
  cut: number;
}

/** The outbox as status shows it. */
export interface OutboxStatus {
  count: number;
  bytes: number;
  oldestAgeSeconds: number | null;
}

/** What `cloudjobs status` shows, kept current under runtime_dir (the one declaration of its shape). */
export interface AgentStatus {
  agentVersion: string;
  pid: number;
  state: AgentState;
  /** "<path>: <errno>: <what>" while the state directory cannot be written, else null. */
  degraded: string | null;
  polling: boolean;
  disabledReason: string | null;
  identitySource: string;
  generation: ApiGeneration | null;
  currentJob: CurrentJobStatus | null;
  lastPoll: { at: number; outcome: string } | null;
  nextPollAt: number | null;
  outbox: OutboxStatus;
  /** Delivery counters since start: refused = dropped on the API's own refusal (or too large even when cut). */
  reports: DeliveryCounts;
  updatedAt: number;
  /** The MQTT push channel, or null when none is configured. */
  push: PushStatus | null;
  /** The same sentence systemd gets as STATUS=. */
  describe?: string;
  /** Holds and maintenance windows (job-gate.ts), or null when the agent has no gate. */
  hold: JobGateStatus | null;
  /** The limits a job runs under (job-limits.ts), or null when not given. */
  limits: JobLimits | null;
}

/** Facts beyond AgentStatus that the STATUS= sentence names. */
export interface StatusExtras {
  /** The message of the loop that died, or null. */
  failed: string | null;
  /** Why the status file cannot be written, or null. */
  statusFault: string | null;
  /** How often a degraded agent checks state_dir again. */
  stateProbeIntervalMs: number;
  /** The running job and the drain deadline (monotonic clock, null before a stop), or null: what a stopping agent waits for. */
  draining: { jobName: string; deadline: number | null } | null;
  /** The outbox's oldest entry (wall clock ms), for its age. */
  oldestEnqueuedAt: number | null;
}

/** Everything describeStatus reads, with the time it was taken. */
export interface StatusSnapshot {
  status: AgentStatus;
  extras: StatusExtras;
  /** Wall clock and monotonic clock when the snapshot was taken. */
  now: number;
  monotonic: number;
}

/** The facts a module may push. */
export type StatusFacts = Partial<Omit<AgentStatus, 'describe' | 'updatedAt' | 'outbox'>> &
  Partial<Pick<StatusExtras, 'failed' | 'draining'>> & { outbox?: { count: number; bytes: number; oldestEnqueuedAt: number | null } };

/** A one-line description of what the agent does, for systemd's STATUS=; a fault comes first. Pure. */
export function describeStatus(snapshot: StatusSnapshot): string {
  const { status, extras } = snapshot;
  if (extras.failed !== null) return `failed: ${extras.failed}; exiting to be restarted`;
  const text = describeState(snapshot);
  const fault = extras.statusFault ? `; cannot write the status file: ${extras.statusFault}` : '';
  if (status.degraded !== null && status.state !== 'degraded') return `degraded: ${status.degraded}; ${text}${fault}`;
  return `${text}${fault}`;
}

function describeTail(s: AgentStatus): string {
  const queued = s.outbox.count;
  const refused = s.reports.refused;
  const held = s.state !== 'held' ? s.hold?.reason : null;
  return `${held ? `; next job ${held}` : ''}${s.push ? `; push ${s.push.state}` : ''}${queued > 0 ? `; ${countOf(queued, 'report')} waiting for the cloud` : ''}${
    refused > 0 ? `; ${countOf(refused, 'report')} refused by the cloud` : ''
  }`;
}

function describeState({ status: s, extras, now, monotonic }: StatusSnapshot): string {
  const tail = describeTail(s);
  switch (s.state) {
    case 'starting':
      return 'starting';
    case 'degraded':
      return `degraded: ${s.degraded ?? 'state directory not writable'}; taking no new job, checking again every ${formatDelay(extras.stateProbeIntervalMs)}${tail}`;
    case 'held':
      return `${s.hold?.reason ?? 'held'}; taking no new job${tail}`;
    case 'disabled':
      return `idle: jobs disabled (${s.disabledReason ?? 'disabled'})${tail}`;
    case 'running': {
      const job = s.currentJob;
      if (!job) return `running a job${tail}`;
      const step = job.step ? ` (step ${job.stepIndex}/${job.stepCount}: ${job.step})` : '';
      if (job.reboots) return `resumed job ${job.jobName} after reboot${step}${tail}`;
      return `running job ${job.jobName}${step}${tail}`;
    }
    case 'rebooting':
      return `rebooting for job ${s.currentJob?.jobName ?? 'a job'}${tail}`;
    case 'backoff': {
      const wait = s.nextPollAt ? Math.max(0, Math.round((s.nextPollAt - now) / 1000)) : 0;
      return `cloud unreachable (${s.lastPoll?.outcome ?? 'error'}), retry in ${wait}s${tail}`;
    }
    case 'stopping': {
      if (extras.draining) {
        const { jobName, deadline } = extras.draining;
        const left = deadline !== null ? Math.max(0, Math.round((deadline - monotonic) / 1000)) : 0;
        return `stopping: waiting for job ${jobName} (${left}s left)`;
      }
      return `stopping: sending ${countOf(s.outbox.count, 'queued report')}`;
    }
    case 'idle': {
      const ago = s.lastPoll ? Math.max(0, Math.round((now - s.lastPoll.at) / 1000)) : 0;
      return `idle, last poll ${ago}s ago${tail}`;
    }
  }
}

// An unchanged status is rewritten at most this often (so `cloudjobs status` shows a recent "last poll").
const STATUS_REFRESH_MS = 15_000;

/** What the sink needs. */
export interface StatusSinkOptions {
  clock: Clock;
  log: Log;
  /** systemd's STATUS= (ports.ts NotifierPort, only the part the sink uses). */
  notifier: { status(text: string): void };
  /** Writes the status file (under runtime_dir). */
  write(status: AgentStatus): Promise<void>;
  /** Watches the writer as a long-lived loop (loop-watch.ts): a bug in it is a loop death. */
  watch(signal: AbortSignal, writing: Promise<void>): Promise<void>;
  initial: Pick<AgentStatus, 'agentVersion' | 'pid' | 'disabledReason' | 'identitySource' | 'limits'> & { stateProbeIntervalMs: number };
}

/** The status sink: facts in, the status file and STATUS= out. */
export interface StatusSink {
  /** Records facts and writes the file if an operator would see the change (no STATUS= update). */
  update(facts: StatusFacts): void;
  /** Records facts and the state, updates STATUS= and writes the file; a stopping agent stays 'stopping'. */
  setState(state: AgentState, facts?: StatusFacts): void;
  /** Marks the agent stopping from now on. */
  markStopping(): void;
  /** Updates STATUS= and the file with the state unchanged (nothing before the agent started). */
  refresh(facts?: StatusFacts): void;
  /** Tells systemd the sentence now (a loop died). */
  announce(): void;
  snapshot(): StatusSnapshot;
  state(): AgentState;
  /** The status as `cloudjobs status` shows it. */
  current(): AgentStatus;
  describe(): string;
  /** No write starts after this; resolves when the last one ended. */
  close(): Promise<void>;
}

/** Creates the status sink, in state 'starting'. */
export function createStatusSink(options: StatusSinkOptions): StatusSink {
  const { clock, log, notifier } = options;
  const { stateProbeIntervalMs, ...fixed } = options.initial;
  const status: AgentStatus = {
    ...fixed,
    state: 'starting',
    degraded: null,
    polling: false,
    generation: null,
    currentJob: null,
    lastPoll: null,
    nextPollAt: null,
    outbox: { count: 0, bytes: 0, oldestAgeSeconds: null },
    reports: { delivered: 0, refused: 0, retried: 0, cut: 0 },
    updatedAt: clock.now(),
    push: null,
    hold: null,
  };
  const extras: StatusExtras = { failed: null, statusFault: null, stateProbeIntervalMs, draining: null, oldestEnqueuedAt: null };
  let stopping = false;
  let writer: Promise<void> | null = null;
  let closed = false;
  let dirty = false;
  let key = '';
  let writtenAt = 0;

  const record = (facts: StatusFacts): void => {
    const { failed, draining, outbox, ...rest } = facts;
    Object.assign(status, rest);
    if (failed !== undefined) extras.failed = failed;
    if (draining !== undefined) extras.draining = draining;
    if (outbox !== undefined) {
      status.outbox = { ...status.outbox, count: outbox.count, bytes: outbox.bytes };
      extras.oldestEnqueuedAt = outbox.oldestEnqueuedAt;
    }
  };
  const snapshot = (): StatusSnapshot => {
    const now = clock.now();
    const oldest = extras.oldestEnqueuedAt;
    const outbox = { ...status.outbox, oldestAgeSeconds: oldest === null ? null : Math.max(0, Math.round((now - oldest) / 1000)) };
    const copy: AgentStatus = { ...status, outbox, reports: { ...status.reports }, currentJob: status.currentJob && { ...status.currentJob } };
    return { status: copy, extras: { ...extras }, now, monotonic: clock.monotonic() };
  };
  const describe = (): string => describeStatus(snapshot());
  const current = (): AgentStatus => {
    const snap = snapshot();
    return { ...snap.status, describe: describeStatus(snap) };
  };

  // A runtime_dir fault is named (journal once, STATUS=) and survived; anything else kills the writer.
  const writeOnce = async (): Promise<void> => {
    try {
      await options.write(current());
      if (extras.statusFault !== null) log.info('the status file is written again');
      extras.statusFault = null;
    } catch (error) {
      const fault = asLocalFault(error);
      if (fault.message !== extras.statusFault) log.error(`could not write the status file: ${fault.message}`, { path: fault.path });
      extras.statusFault = fault.message;
      notifier.status(describe());
    }
  };

  // the key is built from the fields themselves: an idle poll must not build the whole status only to find nothing changed
  const write = (): void => {
    const s = status;
    const job = s.currentJob;
    const r = s.reports;
    const next = `${s.state}|${s.degraded}|${extras.statusFault}|${s.push?.state ?? ''}|${s.generation}|${s.lastPoll?.outcome ?? ''}|${s.outbox.count}|${r.refused}|${r.retried}|${r.cut}|${s.disabledReason}|${s.hold?.reason ?? ''}|${
      job ? JSON.stringify(job) : ''
    }`;
    const now = clock.monotonic();
    if (next === key && now - writtenAt < STATUS_REFRESH_MS) return;
    key = next;
    writtenAt = now;
    dirty = true;
    if (writer || closed) return;
    const done = new AbortController();
    // `writer` is cleared as the loop ends, not a tick later: a change that comes in between starts a new loop
    const writing = (async () => {
      try {
        while (dirty && !closed) {
          dirty = false;
          status.updatedAt = clock.now();
          await writeOnce();
        }
      } finally {
        writer = null;
        done.abort();
      }
    })();
    writer = options.watch(done.signal, writing);
  };

  const setState = (state: AgentState, facts: StatusFacts = {}): void => {
    record(facts);
    status.state = stopping ? 'stopping' : state;
    notifier.status(describe());
    write();
  };

  return {
    update(facts) {
      record(facts);
      write();
    },
    setState,
    markStopping() {
      stopping = true;
      setState('stopping');
    },
    refresh(facts = {}) {
      record(facts);
      if (status.state !== 'starting') setState(status.state);
    },
    announce() {
      notifier.status(describe());
    },
    snapshot,
    state: () => status.state,
    current,
    describe,
    async close() {
      closed = true;
      await writer;
    },
  };
}

/** The outbox, telling the sink its size after every change (enqueue, ack). */
export function reportingOutbox(outbox: Outbox, sink: Pick<StatusSink, 'update'>): Outbox {
  const report = (): void => {
    const { count, bytes, oldestEnqueuedAt } = outbox.stats();
    sink.update({ outbox: { count, bytes, oldestEnqueuedAt } });
  };
  report();
  return {
    ...outbox,
    enqueue: async (jobId, report_) => {
      try {
        return await outbox.enqueue(jobId, report_);
      } finally {
        report();
      }
    },
    ack: async (seq) => {
      try {
        return await outbox.ack(seq);
      } finally {
        report();
      }
    },
  };
}
