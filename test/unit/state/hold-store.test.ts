// The operator's hold file: round trip, expiry on both clocks, a new boot, a corrupt file.
import { readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  createBootClock,
  holdFilePath,
  holdRemainingMs,
  readOperatorHold,
  reanchorHold,
  removeOperatorHold,
  writeOperatorHold,
  type OperatorHold,
} from '../../../src/state/hold-store.js';
import { createRecordingLog, makeTempDir } from './helpers.js';

const forHold = (remainingMs: number, bootId = 'boot-a', bootMs = 1000): OperatorHold => ({
  reason: 'kiosk session',
  setAt: '2026-12-06T09:00:00.000Z',
  expiry: { kind: 'for', durationMs: 7_200_000, anchor: { bootId, bootMs, remainingMs } },
});

describe('hold store', () => {
  it('writes a private file that reads back; missing is none', async () => {
    const dir = await makeTempDir();
    expect(await readOperatorHold(dir)).toEqual({ kind: 'none' });
    await writeOperatorHold(dir, forHold(7_200_000));
    expect(await readOperatorHold(dir)).toEqual({ kind: 'hold', hold: forHold(7_200_000) });
    expect((await stat(holdFilePath(dir))).mode & 0o777).toBe(0o600);
    expect(await removeOperatorHold(dir, null)).toBe(true);
    expect(await readOperatorHold(dir)).toEqual({ kind: 'none' });
    expect(await removeOperatorHold(dir, null)).toBe(false);
  });

  it.each([
    ['not JSON', '{"version":1,'],
    ['a wrong version', '{"version":2,"reason":"","setAt":"2026-12-06T09:00:00.000Z","expiry":{"kind":"none"}}'],
    ['an unknown expiry', '{"version":1,"reason":"","setAt":"2026-12-06T09:00:00.000Z","expiry":{"kind":"soon"}}'],
    ['a negative time left', '{"version":1,"reason":"","setAt":"2026-12-06T09:00:00.000Z","expiry":{"kind":"for","durationMs":5,"anchor":{"bootId":"b","bootMs":1,"remainingMs":-1}}}'],
    ['an empty file', ''],
  ])('a corrupt file (%s) reads as corrupt, is kept, and release moves it aside', async (_what, text) => {
    const dir = await makeTempDir();
    await writeFile(holdFilePath(dir), text);
    const read = await readOperatorHold(dir);
    expect(read.kind).toBe('corrupt');
    expect(await readFile(holdFilePath(dir), 'utf8')).toBe(text);
    const log = createRecordingLog();
    await removeOperatorHold(dir, { reason: read.kind === 'corrupt' ? read.reason : '', log, clock: { now: () => Date.UTC(2026, 11, 6) } });
    expect(await readdir(dir)).toEqual(['hold.json.corrupt-20261206T000000Z']);
    expect(log.messages('warn')[0]).toMatch(/hold\.json is corrupt/);
  });
});

describe('holdRemainingMs', () => {
  it('--until compares with the wall clock', () => {
    expect(holdRemainingMs({ kind: 'until', at: 5000 }, 1000, { id: 'x', ms: 0 })).toBe(4000);
    expect(holdRemainingMs({ kind: 'until', at: 5000 }, 9000, { id: 'x', ms: 0 })).toBe(0);
    expect(holdRemainingMs({ kind: 'none' }, 9000, { id: 'x', ms: 0 })).toBeNull();
  });

  it('--for counts the boot clock, whatever the wall clock does', () => {
    const { expiry } = forHold(60_000, 'boot-a', 1000);
    // the wall clock jumps by a year (NTP on a Pi without RTC): nothing changes
    expect(holdRemainingMs(expiry, 0, { id: 'boot-a', ms: 11_000 })).toBe(50_000);
    expect(holdRemainingMs(expiry, 365 * 86_400_000, { id: 'boot-a', ms: 11_000 })).toBe(50_000);
    expect(holdRemainingMs(expiry, 0, { id: 'boot-a', ms: 61_000 })).toBe(0);
    // another boot: the time off is not counted
    expect(holdRemainingMs(expiry, 0, { id: 'boot-b', ms: 500_000 })).toBe(60_000);
  });

  it('re-anchoring records the time left in the current boot', () => {
    const moved = reanchorHold(forHold(60_000, 'boot-a', 1000), 0, { id: 'boot-a', ms: 21_000 });
    expect(moved.expiry).toEqual({ kind: 'for', durationMs: 7_200_000, anchor: { bootId: 'boot-a', bootMs: 21_000, remainingMs: 40_000 } });
    const next = reanchorHold(moved, 0, { id: 'boot-b', ms: 3000 });
    expect(next.expiry).toMatchObject({ anchor: { bootId: 'boot-b', bootMs: 3000, remainingMs: 40_000 } });
    expect(holdRemainingMs(next.expiry, 0, { id: 'boot-b', ms: 13_000 })).toBe(30_000);
  });
});

describe('createBootClock', () => {
  it('reads the boot id and /proc/uptime', async () => {
    const dir = await makeTempDir();
    await writeFile(join(dir, 'boot_id'), 'abc-123\n');
    await writeFile(join(dir, 'uptime'), '12345.67 40000.00\n');
    const clock = createBootClock(join(dir, 'boot_id'), join(dir, 'uptime'));
    expect(await clock.bootId()).toBe('abc-123');
    expect(await clock.sinceBootMs()).toBe(12_345_670);
    await writeFile(join(dir, 'uptime'), 'garbage');
    await expect(clock.sinceBootMs()).rejects.toThrow(/read the boot clock from .*uptime/);
    const real = createBootClock('/proc/sys/kernel/random/boot_id');
    expect(await real.sinceBootMs()).toBeGreaterThan(0);
  });
});
