// `cloudjobs hold` and `cloudjobs release` (root): the operator's hold in
// state_dir (state/hold-store.ts). The running agent notices the file change
// at once (inotify) and takes no new job while it is held; a running job
// finishes. Works whether the agent runs or not: the hold is durable.
import { createSystemClock } from '../clock/clock.js';
import { formatDuration } from '../config/parse-value.js';
import { UsageError } from '../errors/errors.js';
import { escapeText, showText } from '../log/escape.js';
import { createConsoleTransport, createLog } from '../log/log.js';
import { scanAppHolds } from '../state/app-holds.js';
import { ensurePrivateDir } from '../state/atomic-file.js';
import { createBootClock, readOperatorHold, removeOperatorHold, writeOperatorHold, type HoldExpiry } from '../state/hold-store.js';
import { readLockedFiles } from '../state/proc-locks.js';
import type { Command } from './args.js';
import { EXIT, type CliContext } from './context.js';
import { loadCliConfig } from './setup.js';

type HoldCommand = Extract<Command, { name: 'hold' }>;
type ReleaseCommand = Extract<Command, { name: 'release' }>;

const ROOT_ONLY =
  'must run as root (sudo cloudjobs %s); an application holds jobs without root by keeping a lock on a file in [jobs] hold_dir (README, "Holding jobs")';

/** Sets (or replaces) the operator's hold. */
export async function runHold(ctx: CliContext, command: HoldCommand): Promise<number> {
  if (!ctx.isRoot) throw new UsageError(ROOT_ONLY.replace('%s', 'hold'));
  const { config } = loadCliConfig(ctx, command, { requireApiUrl: false });
  const now = Date.now();
  let expiry: HoldExpiry = { kind: 'none' };
  if (command.until !== null) expiry = { kind: 'until', at: parseUntil(command.until, now) };
  if (command.forMs !== null) {
    const boot = createBootClock(config.agent.boot_id_file);
    const anchor = { bootId: await boot.bootId(), bootMs: await boot.sinceBootMs(), remainingMs: command.forMs };
    expiry = { kind: 'for', durationMs: command.forMs, anchor };
  }
  const before = await readOperatorHold(config.agent.state_dir).catch(() => null);
  await ensurePrivateDir(config.agent.state_dir);
  await writeOperatorHold(config.agent.state_dir, { reason: command.reason, setAt: new Date(now).toISOString(), expiry });
  const replaced = before?.kind === 'hold' ? ` (replaces the hold set ${before.hold.setAt})` : '';
  ctx.stdout.write(
    `${escapeText(`jobs held${command.reason ? `: ${command.reason}` : ''} ${describeExpiry(expiry, now)}${replaced}`)}\n` +
      'the agent takes no new job while held; a running job finishes and reports are still sent. Undo with: cloudjobs release\n',
  );
  return EXIT.ok;
}

/** Removes the operator's hold and says what else still holds jobs. */
export async function runRelease(ctx: CliContext, command: ReleaseCommand): Promise<number> {
  if (!ctx.isRoot) throw new UsageError(ROOT_ONLY.replace('%s', 'release'));
  const { config } = loadCliConfig(ctx, command, { requireApiUrl: false });
  const stateDir = config.agent.state_dir;
  const read = await readOperatorHold(stateDir);
  if (read.kind === 'none') {
    ctx.stdout.write('no operator hold was set\n');
  } else {
    const log = createLog({ level: 'warn', transports: [createConsoleTransport(ctx.stderr)] });
    await removeOperatorHold(stateDir, read.kind === 'corrupt' ? { reason: read.reason, log, clock: createSystemClock() } : null);
    ctx.stdout.write(read.kind === 'hold' ? `${escapeText(`released the hold set ${read.hold.setAt}${read.hold.reason ? ` (${read.hold.reason})` : ''}`)}\n` : 'released (the unreadable hold file was moved aside)\n');
  }
  if (config.jobs.hold_dir !== '') {
    const apps = await scanAppHolds(config.jobs.hold_dir, () => readLockedFiles().catch(() => null));
    if (apps.holds.length > 0) {
      ctx.stdout.write(`jobs stay held by application${apps.holds.length === 1 ? '' : 's'}: ${apps.holds.map((h) => showText(h.name, 64)).join(', ')}\n`);
    }
  }
  return EXIT.ok;
}

// "until 2026-12-06 18:00 (local time)", "for 2h (counted while the device is up)", "until released".
function describeExpiry(expiry: HoldExpiry, now: number): string {
  switch (expiry.kind) {
    case 'none':
      return 'until released';
    case 'until':
      return `until ${formatLocal(expiry.at)} (local time, ${formatDuration(Math.round((expiry.at - now) / 1000) * 1000)} from now)`;
    case 'for':
      return `for ${formatDuration(expiry.durationMs)} (counted on the boot clock while the device is up, about until ${formatLocal(now + expiry.durationMs)})`;
  }
}

function formatLocal(at: number): string {
  const d = new Date(at);
  const two = (n: number): string => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${two(d.getMonth() + 1)}-${two(d.getDate())} ${two(d.getHours())}:${two(d.getMinutes())}`;
}

/**
 * Parses --until: HH:MM (its next occurrence, local time), YYYY-MM-DD HH:MM[:SS]
 * or YYYY-MM-DDTHH:MM[:SS] (local time), optionally ending in Z or ±HH:MM.
 * Returns ms since the epoch; a moment not after `now` is a UsageError.
 */
export function parseUntil(text: string, now: number): number {
  const value = text.trim();
  const form = 'HH:MM, YYYY-MM-DD HH:MM or an ISO 8601 time such as 2026-12-06T18:00:00Z';
  let at: number;
  const clock = /^(\d{2}):(\d{2})$/.exec(value);
  const full = /^(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2})(?::(\d{2}))?(Z|[+-]\d{2}:\d{2})?$/.exec(value);
  if (clock) {
    const [h, m] = [Number(clock[1]), Number(clock[2])];
    if (h > 23 || m > 59) throw new UsageError(`--until ${JSON.stringify(text)} is not a time of day (00:00 to 23:59)`);
    const today = new Date(now);
    at = new Date(today.getFullYear(), today.getMonth(), today.getDate(), h, m).getTime();
    if (at <= now) at = new Date(today.getFullYear(), today.getMonth(), today.getDate() + 1, h, m).getTime();
  } else if (full) {
    const [, y, mo, d, h, mi, s, zone] = full;
    at = zone ? Date.parse(`${y}-${mo}-${d}T${h}:${mi}:${s ?? '00'}${zone}`) : new Date(Number(y), Number(mo) - 1, Number(d), Number(h), Number(mi), Number(s ?? 0)).getTime();
    const check = new Date(Number(y), Number(mo) - 1, Number(d));
    if (Number.isNaN(at) || check.getMonth() !== Number(mo) - 1 || check.getDate() !== Number(d) || Number(h) > 23 || Number(mi) > 59 || Number(s ?? 0) > 59) {
      throw new UsageError(`--until ${JSON.stringify(text)} is not a valid date and time (${form})`);
    }
  } else {
    throw new UsageError(`--until takes ${form}, got ${JSON.stringify(text)}`);
  }
  if (at <= now) throw new UsageError(`--until ${JSON.stringify(text)} is not in the future`);
  return at;
}
