// --until: the forms it takes, against an injected now (local time via the Date constructor).
import { describe, expect, it } from 'vitest';
import { parseUntil } from '../../../src/cli/hold-command.js';

const NOW = new Date(2026, 11, 6, 10, 30).getTime();

describe('parseUntil', () => {
  it('HH:MM is its next occurrence', () => {
    expect(parseUntil('18:00', NOW)).toBe(new Date(2026, 11, 6, 18, 0).getTime());
    expect(parseUntil('09:00', NOW)).toBe(new Date(2026, 11, 7, 9, 0).getTime());
  });

  it('takes a local date and time, or an ISO time with a zone', () => {
    expect(parseUntil('2026-12-24 18:00', NOW)).toBe(new Date(2026, 11, 24, 18, 0).getTime());
    expect(parseUntil('2026-12-24T18:00:30', NOW)).toBe(new Date(2026, 11, 24, 18, 0, 30).getTime());
    expect(parseUntil('2027-01-01T00:00:00Z', NOW)).toBe(Date.UTC(2027, 0, 1));
    expect(parseUntil('2027-01-01T02:00+02:00', NOW)).toBe(Date.UTC(2027, 0, 1));
  });

  it.each([
    ['24:00', /not a time of day/],
    ['2026-02-30 10:00', /not a valid date and time/],
    ['2026-12-06 10:00', /not in the future/],
    ['tomorrow', /--until takes HH:MM, YYYY-MM-DD HH:MM or an ISO 8601 time/],
  ])('refuses %s', (text, message) => {
    expect(() => parseUntil(text, NOW)).toThrow(message);
  });
});

describe('hold and release need root', () => {
  it('refuse a non-root user, pointing applications to hold_dir', async () => {
    const { runHold, runRelease } = await import('../../../src/cli/hold-command.js');
    const ctx = { isRoot: false } as unknown as import('../../../src/cli/context.js').CliContext;
    const base = { configFile: '/nonexistent/agent.ini', configGiven: true };
    await expect(runHold(ctx, { ...base, name: 'hold', reason: '', forMs: null, until: null })).rejects.toThrow(
      /^must run as root \(sudo cloudjobs hold\); an application holds jobs without root by keeping a lock on a file in \[jobs\] hold_dir/,
    );
    await expect(runRelease(ctx, { ...base, name: 'release' })).rejects.toThrow(/^must run as root \(sudo cloudjobs release\)/);
  });
});
