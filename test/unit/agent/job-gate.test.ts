// The job gate with an injected clock: what holds, in which order, expiry, and waits that end early.
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createJobGate, decideGate, type JobGateOptions } from '../../../src/agent/job-gate.js';
import { createManualClock } from '../../../src/clock/clock.js';
import { parseMaintenanceWindows, type MaintenanceWindow } from '../../../src/config/maintenance-windows.js';
import { readOperatorHold, writeOperatorHold } from '../../../src/state/hold-store.js';
import { createRecordingLog, makeTempDir } from '../state/helpers.js';

// Monday 2026-01-05, local time
const MONDAY_NOON = new Date(2026, 0, 5, 12, 0).getTime();
const NO_APPS = { holds: [], stale: [], skipped: 0 };

function windows(...entries: string[]): MaintenanceWindow[] {
  const parsed = parseMaintenanceWindows(entries);
  if (!parsed.ok) throw new Error(parsed.problem);
  return parsed.windows;
}

describe('decideGate', () => {
  it('is open with nothing set', () => {
    expect(decideGate({ now: MONDAY_NOON, operator: { kind: 'none' }, operatorRemainingMs: null, apps: NO_APPS, windows: [] })).toMatchObject({
      held: false,
      reason: null,
      inMaintenanceWindow: true,
      nextWindowAt: null,
    });
  });

  it('the operator comes first, then applications, then windows', () => {
    const apps = { holds: [{ name: 'kiosk-app', reason: 'customer session' }, { name: 'robot', reason: '' }], stale: [], skipped: 0 };
    const operator = { kind: 'hold' as const, hold: { reason: 'firmware freeze', setAt: '2026-01-05T10:00:00.000Z', expiry: { kind: 'none' as const } } };
    const w = windows('Mon-Fri 22:00-02:00');
    expect(decideGate({ now: MONDAY_NOON, operator, operatorRemainingMs: null, apps, windows: w }).reason).toBe('held by operator: firmware freeze');
    expect(decideGate({ now: MONDAY_NOON, operator: { kind: 'none' }, operatorRemainingMs: null, apps, windows: w }).reason).toBe(
      'held by kiosk-app: customer session (and 1 more)',
    );
    const outside = decideGate({ now: MONDAY_NOON, operator: { kind: 'none' }, operatorRemainingMs: null, apps: NO_APPS, windows: w });
    expect(outside).toMatchObject({ held: true, reason: 'outside maintenance window, next at 22:00', nextWindowAt: new Date(2026, 0, 5, 22, 0).getTime() });
    const inside = decideGate({ now: new Date(2026, 0, 6, 1, 0).getTime(), operator: { kind: 'none' }, operatorRemainingMs: null, apps: NO_APPS, windows: w });
    expect(inside).toMatchObject({ held: false, inMaintenanceWindow: true, nextWindowAt: null });
  });

  it('escapes what an application wrote and holds on an unreadable hold file', () => {
    const apps = { holds: [{ name: 'evil\u001b[2J', reason: 'line\rback' }], stale: [], skipped: 0 };
    expect(decideGate({ now: 0, operator: { kind: 'none' }, operatorRemainingMs: null, apps, windows: [] }).reason).toBe('held by evil\\u001b[2J: line\\rback');
    const corrupt = decideGate({ now: 0, operator: { kind: 'corrupt', reason: 'not JSON' }, operatorRemainingMs: null, apps: NO_APPS, windows: [] });
    expect(corrupt).toMatchObject({ held: true, reason: 'held by operator: the hold file is unusable (not JSON); run cloudjobs release', operator: { expiry: 'unreadable' } });
  });
});

async function gateFixture(extra: Partial<JobGateOptions> = {}) {
  const stateDir = await makeTempDir();
  const holdDir = await makeTempDir();
  const clock = createManualClock(MONDAY_NOON);
  const log = createRecordingLog();
  const boot = { id: 'boot-a', ms: 5000 };
  const gate = createJobGate({
    clock,
    log,
    stateDir,
    holdDir,
    windows: [],
    bootClock: { bootId: async () => boot.id, sinceBootMs: async () => boot.ms },
    readLocks: async () => new Set(),
    ...extra,
  });
  return { gate, clock, log, stateDir, holdDir, boot };
}

describe('createJobGate', () => {
  it('a --for hold expires on the boot clock, is removed, and the change is logged once each way', async () => {
    const { gate, log, stateDir, boot } = await gateFixture();
    await writeOperatorHold(stateDir, { reason: 'kiosk', setAt: '2026-01-05T11:00:00.000Z', expiry: { kind: 'for', durationMs: 60_000, anchor: { bootId: 'boot-a', bootMs: 5000, remainingMs: 60_000 } } });
    await gate.start(() => undefined);
    expect(await gate.check()).toMatchObject({ held: true, operator: { expiry: 'for', expiresAt: MONDAY_NOON + 60_000 } });
    await gate.check();
    boot.ms = 64_999;
    expect((await gate.check()).held).toBe(true);
    boot.ms = 65_000;
    expect((await gate.check()).held).toBe(false);
    expect(await readOperatorHold(stateDir)).toEqual({ kind: 'none' });
    expect(log.messages('info')).toEqual([
      'taking no new job: held by operator: kiosk (for 1m)',
      "the operator's hold expired (kiosk); removed it",
      'jobs are no longer held (was: held by operator: kiosk (for 1m)); polling for jobs again',
    ]);
  });

  it('start moves a --for hold of another boot to this one; close records the time left', async () => {
    const { gate, stateDir, boot } = await gateFixture();
    await writeOperatorHold(stateDir, { reason: '', setAt: '2026-01-05T11:00:00.000Z', expiry: { kind: 'for', durationMs: 60_000, anchor: { bootId: 'old-boot', bootMs: 90_000, remainingMs: 40_000 } } });
    await gate.start(() => undefined);
    expect(await readOperatorHold(stateDir)).toMatchObject({ hold: { expiry: { anchor: { bootId: 'boot-a', bootMs: 5000, remainingMs: 40_000 } } } });
    boot.ms = 15_000;
    await gate.close();
    expect(await readOperatorHold(stateDir)).toMatchObject({ hold: { expiry: { anchor: { bootId: 'boot-a', bootMs: 15_000, remainingMs: 30_000 } } } });
  });

  it('an application file holds only while the kernel lists a lock on it', async () => {
    let locked = new Set<string>();
    const { gate, holdDir, log } = await gateFixture({ readLocks: async () => locked });
    await writeFile(join(holdDir, 'kiosk-app'), 'customer session\n');
    expect((await gate.check()).held).toBe(false);
    expect(log.messages('info')).toEqual(['ignoring hold files whose holder ended (no lock on them): kiosk-app']);
    // the key the kernel would list for this file
    const { stat } = await import('node:fs/promises');
    const { splitDevice, lockKey } = await import('../../../src/state/proc-locks.js');
    const s = await stat(join(holdDir, 'kiosk-app'), { bigint: true });
    const { major, minor } = splitDevice(s.dev);
    locked = new Set([lockKey(major, minor, s.ino)]);
    expect(await gate.check()).toMatchObject({ held: true, reason: 'held by kiosk-app: customer session', applications: [{ name: 'kiosk-app', reason: 'customer session' }] });
  });

  it('without the kernel lock list every file holds, with one warning', async () => {
    const { gate, holdDir, log } = await gateFixture({ readLocks: async () => Promise.reject(new (await import('../../../src/errors/errors.js')).StateIoError('/proc/locks', 'cannot read the kernel lock list /proc/locks: EACCES', { errno: 'EACCES' })) });
    await writeFile(join(holdDir, 'robot'), '');
    expect((await gate.check()).reason).toBe('held by robot');
    await gate.check();
    expect(log.messages('warn')).toHaveLength(1);
  });

  it('a wait ends at a window start, or at once on a file event', async () => {
    let fire: (name: string | null) => void = () => undefined;
    const { gate, clock } = await gateFixture({
      windows: windows('12:10-13:00'),
      watchDir: (_dir, onEvent) => {
        fire = onEvent;
        return () => undefined;
      },
    });
    await gate.start(() => undefined);
    expect((await gate.check()).reason).toBe('outside maintenance window, next at 12:10');
    let done = false;
    const waiting = gate.wait(3_600_000, new AbortController().signal).then(() => (done = true));
    await clock.advance(599_000);
    expect(done).toBe(false);
    await clock.advance(2000);
    await waiting;
    expect(clock.now()).toBeLessThanOrEqual(MONDAY_NOON + 601_000);
    const second = gate.wait(30_000, new AbortController().signal);
    fire('hold.json');
    await second;
    expect(clock.now()).toBe(MONDAY_NOON + 601_000);
  });
});

describe('createJobGate faults', () => {
  it('a hold file that cannot be read (here: a directory) holds, saying why', async () => {
    const { gate, stateDir } = await gateFixture();
    const { mkdir } = await import('node:fs/promises');
    await mkdir(join(stateDir, 'hold.json'));
    const status = await gate.check();
    expect(status).toMatchObject({ held: true, operator: { expiry: 'unreadable' } });
    expect(status.reason).toMatch(/^held by operator: the hold file is unusable \(could not read .*hold\.json \(EISDIR.*\); run cloudjobs release$/);
  });

  it('a boot clock that cannot be read holds a --for hold', async () => {
    const { gate, stateDir } = await gateFixture({ bootClock: { bootId: async () => Promise.reject(new (await import('../../../src/errors/errors.js')).StateIoError('/proc/sys/kernel/random/boot_id', 'cannot read the boot id: EIO', { errno: 'EIO' })), sinceBootMs: async () => 0 } });
    await writeOperatorHold(stateDir, { reason: '', setAt: '2026-01-05T11:00:00.000Z', expiry: { kind: 'for', durationMs: 1000, anchor: { bootId: 'b', bootMs: 0, remainingMs: 1000 } } });
    expect((await gate.check()).reason).toBe('held by operator: the hold file is unusable (cannot tell when it ends: cannot read the boot id: EIO); run cloudjobs release');
  });
});

describe('createJobGate at start', () => {
  it('logs a hold found by the first check, even one known before it (a window)', async () => {
    const { gate, log } = await gateFixture({ windows: windows('22:00-23:00') });
    expect(gate.status().held).toBe(true);
    await gate.check();
    await gate.check();
    expect(log.messages('info')).toEqual(['taking no new job: outside maintenance window, next at 22:00']);
  });
});
