// [jobs] maintenance_windows: when the agent may take a new job. Entries are
// `[DAYS ]HH:MM-HH:MM` in the device's local time; DAYS is a day (`Sun`) or a
// range (`Mon-Fri`, `Fri-Mon` wraps); a window whose end is not after its
// start crosses midnight and belongs to the day it starts on. Pure functions:
// the caller passes the time (an injected clock), local time comes from Date.
//
// A wall-clock jump (NTP fixing a Pi without RTC) only moves "now": every
// decision is taken afresh from the current time, nothing is counted down.

/** One parsed window. */
export interface MaintenanceWindow {
  /** The entry as written (trimmed), for messages. */
  text: string;
  /** Days the window starts on, 0 = Sunday (Date#getDay). */
  days: ReadonlySet<number>;
  /** Start and end in minutes after local midnight; end may be 1440 (24:00). */
  start: number;
  end: number;
}

/** A parsed list, or the entry that does not parse and why. */
export type ParsedWindows = { ok: true; windows: MaintenanceWindow[] } | { ok: false; entry: string; problem: string };

/** The form of an entry, for config messages. */
export const WINDOW_FORM = 'comma-separated [DAYS ]HH:MM-HH:MM in local time, DAYS a day or range (Mon-Fri, Sat-Sun, Sun), e.g. "Mon-Fri 22:00-02:00, Sat-Sun 00:00-24:00"';

const DAY_NAMES = ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'] as const;
const ALL_DAYS: ReadonlySet<number> = new Set([0, 1, 2, 3, 4, 5, 6]);
const MINUTES_PER_DAY = 1440;
// An entry longer than this is not a window.
const MAX_ENTRY_CHARS = 40;

/** Parses the entries of [jobs] maintenance_windows (already split at commas). */
export function parseMaintenanceWindows(entries: readonly string[]): ParsedWindows {
  const windows: MaintenanceWindow[] = [];
  for (const raw of entries) {
    const entry = raw.trim();
    if (entry === '') continue;
    const parsed = parseWindow(entry);
    if (typeof parsed === 'string') return { ok: false, entry: entry.slice(0, MAX_ENTRY_CHARS), problem: parsed };
    windows.push(parsed);
  }
  return { ok: true, windows };
}

// One entry, or the reason it is not one.
function parseWindow(entry: string): MaintenanceWindow | string {
  if (entry.length > MAX_ENTRY_CHARS) return `longer than ${MAX_ENTRY_CHARS} characters`;
  const match = /^(?:([A-Za-z]{3})(?:-([A-Za-z]{3}))?\s+)?(\d{2}):(\d{2})-(\d{2}):(\d{2})$/.exec(entry);
  if (!match) return 'not of the form [DAYS ]HH:MM-HH:MM';
  const [, from, to, sh, sm, eh, em] = match as unknown as [string, string | undefined, string | undefined, string, string, string, string];
  const days = from === undefined ? ALL_DAYS : parseDays(from, to);
  if (typeof days === 'string') return days;
  const start = toMinutes(sh, sm);
  const end = toMinutes(eh, em);
  if (start === null || start === MINUTES_PER_DAY) return `${sh}:${sm} is not a start time (00:00 to 23:59)`;
  if (end === null) return `${eh}:${em} is not an end time (00:00 to 24:00)`;
  if (start === end) return 'starts and ends at the same time (for a whole day write 00:00-24:00)';
  return { text: entry, days, start, end };
}

function parseDays(from: string, to: string | undefined): ReadonlySet<number> | string {
  const first = dayIndex(from);
  const last = to === undefined ? first : dayIndex(to);
  if (first < 0) return `${from} is not a day (Mon, Tue, Wed, Thu, Fri, Sat, Sun)`;
  if (last < 0) return `${to} is not a day (Mon, Tue, Wed, Thu, Fri, Sat, Sun)`;
  const days = new Set<number>();
  for (let day = first; ; day = (day + 1) % 7) {
    days.add(day);
    if (day === last) break;
  }
  return days;
}

function dayIndex(name: string): number {
  return (DAY_NAMES as readonly string[]).indexOf(name.toLowerCase());
}

function toMinutes(hours: string, minutes: string): number | null {
  const h = Number(hours);
  const m = Number(minutes);
  if (m > 59 || h > 24 || (h === 24 && m !== 0)) return null;
  return h * 60 + m;
}

/** Whether local time `now` (ms since the epoch) is inside a window; no windows means always. */
export function isInMaintenanceWindow(windows: readonly MaintenanceWindow[], now: number): boolean {
  if (windows.length === 0) return true;
  const date = new Date(now);
  const day = date.getDay();
  const minute = date.getHours() * 60 + date.getMinutes();
  const yesterday = (day + 6) % 7;
  return windows.some((w) =>
    w.start < w.end
      ? w.days.has(day) && minute >= w.start && minute < w.end
      : (w.days.has(day) && minute >= w.start) || (w.days.has(yesterday) && minute < w.end),
  );
}

/** When the next window opens after `now` (ms since the epoch), or null when there are no windows. */
export function nextMaintenanceWindow(windows: readonly MaintenanceWindow[], now: number): number | null {
  let best: number | null = null;
  const today = new Date(now);
  // a week and a day covers every start; the local Date constructor handles DST (a missing 02:30 becomes 03:30)
  for (let offset = 0; offset <= 7; offset += 1) {
    const day = new Date(today.getFullYear(), today.getMonth(), today.getDate() + offset);
    for (const w of windows) {
      if (!w.days.has(day.getDay())) continue;
      const start = new Date(day.getFullYear(), day.getMonth(), day.getDate(), Math.floor(w.start / 60), w.start % 60).getTime();
      if (start > now && (best === null || start < best)) best = start;
    }
  }
  return best;
}

/** "02:00" when `at` is within a day of `now`, else "Sat 02:00" (local time). */
export function formatWindowStart(at: number, now: number): string {
  const date = new Date(at);
  const time = `${String(date.getHours()).padStart(2, '0')}:${String(date.getMinutes()).padStart(2, '0')}`;
  if (at - now < 86_400_000) return time;
  const name = DAY_NAMES[date.getDay()] as string;
  return `${name.charAt(0).toUpperCase()}${name.slice(1)} ${time}`;
}
