// Maintenance windows against an injected time: local times are built with the
// local Date constructor, so the tests hold in any time zone.
import { describe, expect, it } from 'vitest';
import { formatWindowStart, isInMaintenanceWindow, nextMaintenanceWindow, parseMaintenanceWindows, type MaintenanceWindow } from '../../../src/config/maintenance-windows.js';
import { loadConfig } from '../../../src/config/load.js';

// 2026-01-05 is a Monday
const at = (day: number, h: number, m = 0): number => new Date(2026, 0, day, h, m).getTime();

function windows(...entries: string[]): MaintenanceWindow[] {
  const parsed = parseMaintenanceWindows(entries);
  if (!parsed.ok) throw new Error(`${parsed.entry}: ${parsed.problem}`);
  return parsed.windows;
}

describe('parseMaintenanceWindows', () => {
  it('reads days, ranges, whole days and midnight crossings', () => {
    const [weekdays, weekend, every, sunday] = windows('Mon-Fri 22:00-02:00', 'sat-SUN 00:00-24:00', '03:00-04:30', 'Sun 12:00-13:00');
    expect([...(weekdays?.days ?? [])]).toEqual([1, 2, 3, 4, 5]);
    expect(weekdays).toMatchObject({ start: 1320, end: 120, text: 'Mon-Fri 22:00-02:00' });
    expect([...(weekend?.days ?? [])]).toEqual([6, 0]);
    expect(weekend).toMatchObject({ start: 0, end: 1440 });
    expect(every?.days.size).toBe(7);
    expect([...(sunday?.days ?? [])]).toEqual([0]);
    expect(parseMaintenanceWindows([])).toEqual({ ok: true, windows: [] });
  });

  it.each([
    ['Mon-Fry 22:00-02:00', 'Fry is not a day'],
    ['22:00-22:00', 'starts and ends at the same time'],
    ['25:00-02:00', 'is not a start time'],
    ['24:00-02:00', 'is not a start time'],
    ['01:00-24:30', 'is not an end time'],
    ['1:00-02:00', 'not of the form'],
    ['Mon,Tue 01:00-02:00', 'not of the form'],
    ['Monday 01:00-02:00', 'not of the form'],
  ])('names the malformed entry %s', (entry, problem) => {
    const parsed = parseMaintenanceWindows(['03:00-04:00', entry]);
    expect(parsed.ok).toBe(false);
    if (!parsed.ok) {
      expect(parsed.entry).toBe(entry);
      expect(parsed.problem).toContain(problem);
    }
  });

  it('check-config names the malformed entry and the form', () => {
    expect(() =>
      loadConfig({ file: '/etc/cloudjobs/agent.ini', fileText: '[cloud]\napi_url = https://c.example/api\n[jobs]\nmaintenance_windows = Mon-Fri 22:00-02:00, Sat 9:00-10:00\n', env: {} }),
    ).toThrow(/jobs\.maintenance_windows: expected comma-separated \[DAYS \]HH:MM-HH:MM.*"Sat 9:00-10:00" is not of the form/s);
  });
});

describe('isInMaintenanceWindow', () => {
  it('is always open without windows', () => {
    expect(isInMaintenanceWindow([], at(5, 12))).toBe(true);
  });

  it('a window that crosses midnight belongs to the day it starts on', () => {
    const w = windows('Mon-Fri 22:00-02:00');
    expect(isInMaintenanceWindow(w, at(5, 21, 59))).toBe(false); // Mon 21:59
    expect(isInMaintenanceWindow(w, at(5, 22, 0))).toBe(true); // Mon 22:00
    expect(isInMaintenanceWindow(w, at(6, 1, 59))).toBe(true); // Tue 01:59, from Monday
    expect(isInMaintenanceWindow(w, at(6, 2, 0))).toBe(false); // end is exclusive
    expect(isInMaintenanceWindow(w, at(10, 23, 0))).toBe(false); // Sat 23:00: Saturday is not listed
    expect(isInMaintenanceWindow(w, at(10, 1, 0))).toBe(true); // Sat 01:00: Friday's window
    expect(isInMaintenanceWindow(w, at(11, 1, 0))).toBe(false); // Sun 01:00
    expect(isInMaintenanceWindow(w, at(5, 1, 0))).toBe(false); // Mon 01:00: Sunday is not listed
  });

  it('a day range wraps around the week and 24:00 ends at midnight', () => {
    const w = windows('Fri-Mon 00:00-24:00');
    expect([9, 10, 11, 12].map((d) => isInMaintenanceWindow(w, at(d, 12)))).toEqual([true, true, true, true]);
    expect([6, 7, 8].map((d) => isInMaintenanceWindow(w, at(d, 12)))).toEqual([false, false, false]);
    expect(isInMaintenanceWindow(w, at(12, 23, 59))).toBe(true);
  });
});

describe('nextMaintenanceWindow', () => {
  it('finds the next start, today, tomorrow or next week', () => {
    const w = windows('Mon-Fri 22:00-02:00', 'Sun 12:00-13:00');
    expect(nextMaintenanceWindow(w, at(5, 12))).toBe(at(5, 22)); // Mon noon -> Mon 22:00
    expect(nextMaintenanceWindow(w, at(5, 22, 30))).toBe(at(6, 22)); // inside -> the start after
    expect(nextMaintenanceWindow(w, at(10, 3))).toBe(at(11, 12)); // Sat -> Sun noon
    expect(nextMaintenanceWindow(windows('Wed 03:00-04:00'), at(7, 3, 30))).toBe(at(14, 3)); // a week later
    expect(nextMaintenanceWindow([], at(5, 12))).toBeNull();
  });

  it('formats the start as a time within a day, else with the day', () => {
    expect(formatWindowStart(at(6, 2), at(5, 23))).toBe('02:00');
    expect(formatWindowStart(at(10, 2), at(5, 23))).toBe('Sat 02:00');
  });
});
