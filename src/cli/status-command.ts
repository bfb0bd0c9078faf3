// `cloudjobs status` and `cloudjobs history`: read what the running agent
// keeps under runtime_dir and state_dir; never talk to the agent or the cloud.
import type { AgentStatus } from '../agent/status.js';
import { createSystemClock } from '../clock/clock.js';
import { describeLimits, formatBytes } from '../jobs/limits.js';
import { escapeJsonText, escapeText } from '../log/escape.js';
import { createNullLog } from '../log/log.js';
import { openHistory } from '../state/history.js';
import { readRuntimeStatus, STATUS_VERSION } from '../state/runtime-status.js';
import type { Command } from './args.js';
import type { SignatureStatus } from './signing-setup.js';
import { EXIT, type CliContext } from './context.js';
import { loadCliConfig } from './setup.js';

type StatusCommand = Extract<Command, { name: 'status' }>;
type HistoryCommand = Extract<Command, { name: 'history' }>;

/** Prints the running agent's status; exit 1 when no agent is running. */
export async function runStatus(ctx: CliContext, command: StatusCommand): Promise<number> {
  const { config } = loadCliConfig(ctx, command, { requireApiUrl: false });
  const file = await readRuntimeStatus(config.agent.runtime_dir);
  if (!file) {
    ctx.stderr.write(
      `cloudjobs: the agent is not running (no status file at ${config.agent.runtime_dir}/status.json); start it with: systemctl start cloudjobs\n`,
    );
    return EXIT.failure;
  }
  // what the agent wrote: AgentStatus plus the file's version (the JSON schema in test/ checks the shape)
  const status = file.status as StatusFile;
  if (command.json) {
    ctx.stdout.write(`${escapeJsonText(JSON.stringify({ version: STATUS_VERSION, ...status }, null, 2))}\n`);
    return EXIT.ok;
  }
  ctx.stdout.write(formatStatus(status, Date.now()));
  return EXIT.ok;
}

/**
 * What `cloudjobs status --json` prints: the agent's own status type and the
 * signature policy `cloudjobs run` adds to it, plus the file's version. Fields
 * may be missing when an older agent wrote the file.
 */
export type StatusFile = Partial<AgentStatus & { signatures: SignatureStatus }>;

/** Formats the status file for a terminal; server text in it (job names, ids, steps) is escaped, one line each. */
export function formatStatus(s: StatusFile, now: number): string {
  const ago = (at: number | undefined | null): string => (at ? `${Math.max(0, Math.round((now - at) / 1000))}s ago` : 'never');
  const lines = [
    `state:          ${s.state ?? 'unknown'}${s.describe ? ` (${s.describe})` : ''}`,
    ...(s.degraded ? [`degraded:       ${s.degraded} (no new job until it can be written; checked every poll interval)`] : []),
    `polling:        ${s.polling ? 'yes' : 'no'}${s.disabledReason ? ` (jobs disabled: ${s.disabledReason})` : ''}`,
    `api generation: ${s.generation ?? 'not detected yet'}`,
    `identity:       ${s.identitySource ?? 'unknown'}`,
    `signatures:     ${formatSignatures(s.signatures)}`,
    `current job:    ${s.currentJob ? formatCurrentJob(s.currentJob) : 'none'}`,
    ...(s.currentJob?.limits ? [`job limits:     ${formatJobLimits(s.currentJob.limits)}`] : []),
    `last poll:      ${s.lastPoll ? `${ago(s.lastPoll.at)}, ${s.lastPoll.outcome}` : 'never'}`,
    `next poll:      ${s.nextPollAt ? `in ${Math.max(0, Math.round((s.nextPollAt - now) / 1000))}s` : '-'}`,
    `push (MQTT):    ${formatPush(s.push, ago)}`,
    ...formatHold(s.hold),
    `queued reports: ${s.outbox ? `${s.outbox.count}${s.outbox.oldestAgeSeconds !== null ? `, oldest ${s.outbox.oldestAgeSeconds}s old` : ''}` : 'unknown'}`,
    `reports:        ${s.reports ? formatReportCounts(s.reports) : 'unknown'}`,
    `version:        ${s.agentVersion ?? 'unknown'} (pid ${s.pid ?? '?'}), status written ${ago(s.updatedAt)}`,
  ];
  return `${lines.map(escapeText).join('\n')}\n`;
}

// "update (j1), step 2/3: apt, after 1 reboot"
function formatCurrentJob(job: NonNullable<AgentStatus['currentJob']>): string {
  const step = job.step ? `, step ${job.stepIndex}/${job.stepCount}: ${job.step}` : '';
  const reboots = job.reboots ? `, after ${job.reboots} reboot${job.reboots === 1 ? '' : 's'}` : '';
  return `${job.jobName} (${job.jobId})${step}${reboots}`;
}

/** The signature policy in one line: "required; trusted keys 0a1b2c3d4e5f6071, ..." or "not required (...); no trusted key in DIR". */
export function formatSignatures(s: SignatureStatus | undefined): string {
  if (!s) return 'unknown (an agent older than signed jobs)';
  const keys = s.trustedKeyIds.length === 0 ? `no trusted key in ${s.trustedKeysDir}` : `trusted keys ${s.trustedKeyIds.join(', ')}`;
  return `${s.required ? 'required' : 'not required (a signed document is still checked)'}; ${keys}`;
}

// "held:  held by kiosk-app: customer session" and the windows, when there is a gate.
function formatHold(hold: AgentStatus['hold'] | undefined): string[] {
  if (!hold) return [];
  const lines = [`jobs held:      ${hold.held ? hold.reason : 'no'}`];
  if (hold.operator?.expiry === 'for' || hold.operator?.expiry === 'until') {
    lines.push(`hold ends:      ${hold.operator.expiresAt ? new Date(hold.operator.expiresAt).toISOString() : '-'}`);
  }
  if (hold.applications.length > 0) lines.push(`app holds:      ${hold.applications.map((a) => `${a.name}${a.reason ? ` (${a.reason})` : ''}`).join(', ')}`);
  if (hold.maintenanceWindows.length > 0) {
    const next = hold.nextWindowAt ? `, next opens ${new Date(hold.nextWindowAt).toISOString()}` : '';
    lines.push(`windows:        ${hold.maintenanceWindows.join(', ')} (${hold.inMaintenanceWindow ? 'inside one now' : 'outside'}${next})`);
  }
  return lines;
}

/** status_details.limits as one line: "memory 64 MiB, 64 tasks, CPU 80% (enforced), peak memory 12.5 MiB". */
export function formatJobLimits(raw: unknown): string {
  const l = (raw ?? {}) as { enforced?: boolean; why?: string; memory_max?: number | null; tasks_max?: number | null; cpu_quota_percent?: number | null; memory_peak?: number | null };
  const limits = describeLimits({ memoryMax: l.memory_max ?? null, tasksMax: l.tasks_max ?? null, cpuQuota: l.cpu_quota_percent ?? null });
  if (!l.enforced) return `${limits} (not enforced: ${l.why ?? 'unknown'})`;
  return `${limits} (enforced)${typeof l.memory_peak === 'number' ? `, peak memory ${formatBytes(l.memory_peak)}` : ''}`;
}

// e.g. "12 delivered, 1 refused by the cloud (dropped), 3 retries, 1 cut to fit (413)"
function formatReportCounts(r: AgentStatus['reports']): string {
  const parts = [`${r.delivered} delivered`, `${r.refused} refused by the cloud (dropped)`, `${r.retried} retried`];
  if (r.cut > 0) parts.push(`${r.cut} cut to fit (413)`);
  return parts.join(', ');
}

// "connected to mqtts://broker:8883 since 2m ago, 3 notifications, last 10s ago", or "off (no broker configured)".
function formatPush(
  push: AgentStatus['push'] | undefined,
  ago: (at: number | null | undefined) => string,
): string {
  if (!push) return 'off (no broker configured; polling only)';
  const error = push.lastError ? `; last problem: ${push.lastError}` : '';
  const last = push.lastNotificationAt ? `, last ${ago(push.lastNotificationAt)}` : '';
  return `${push.state} ${push.state === 'connected' ? 'to' : 'broker'} ${push.broker} since ${ago(push.since)}, ${push.notifications} notification${push.notifications === 1 ? '' : 's'}${last}${error}`;
}

/** Prints the most recent finished jobs. */
export async function runHistory(ctx: CliContext, command: HistoryCommand): Promise<number> {
  const { config } = loadCliConfig(ctx, command, { requireApiUrl: false });
  const history = await openHistory({
    stateDir: config.agent.state_dir,
    size: config.agent.history_size,
    log: createNullLog(),
    clock: createSystemClock(),
    readOnly: true,
  });
  const entries = await history.list(command.limit);
  if (command.json) {
    ctx.stdout.write(`${escapeJsonText(JSON.stringify(entries, null, 2))}\n`);
    return EXIT.ok;
  }
  if (entries.length === 0) {
    ctx.stdout.write('no finished jobs yet\n');
    return EXIT.ok;
  }
  for (const entry of entries) {
    const head = `${entry.finishedAt}  ${entry.report.status.padEnd(9)}  ${entry.jobName} (${entry.jobId})`;
    ctx.stdout.write(`${escapeText(head)}\n    ${escapeText(entry.report.reason)}\n`);
  }
  return EXIT.ok;
}
