// Parsers for the value kinds of agent.ini (durations, sizes, percentages,
// booleans, whole numbers, lists, URLs) and their inverses for display. Each
// parser either returns the value or says what form it expected; none coerces
// a doubtful value into something else.

/** A parsed value, or the form that was expected and advice for the user. */
export type Parsed<T> = { ok: true; value: T } | { ok: false; expected: string; hint?: string };

/** Expected-form phrases shared by the parsers and the loader's messages. */
export const EXPECTED = {
  duration: 'a duration with a unit (ms, s, m, h, d) such as 250ms, 30s, 5m or 1h30m',
  size: 'a size with a unit (B, KiB, MiB, GiB; KB, MB, GB are 1000-based) such as 64KiB',
  percent: 'a percentage such as 10% or 10',
  bool: 'true or false (also yes/no, on/off, 1/0)',
  int: 'a whole number',
  url: 'an absolute http:// or https:// URL with a host, such as https://cloud.example.com/api/v1',
  path: 'an absolute path',
  broker: 'empty, off, or a broker URL such as mqtts://broker.example.com:8883 or mqtt://127.0.0.1:1883',
  milliseconds: 'milliseconds as a plain whole number such as 30000',
} as const;

const DURATION_UNITS: ReadonlyArray<readonly [string, number]> = [
  ['d', 86_400_000],
  ['h', 3_600_000],
  ['m', 60_000],
  ['s', 1000],
  ['ms', 1],
];

const SIZE_UNITS: Readonly<Record<string, number>> = {
  b: 1,
  kib: 1024,
  mib: 1024 ** 2,
  gib: 1024 ** 3,
  kb: 1000,
  mb: 1000 ** 2,
  gb: 1000 ** 3,
};

const NUMBER = /^\d+(?:\.\d+)?$/;

function fail<T>(expected: string, hint?: string): Parsed<T> {
  return hint === undefined ? { ok: false, expected } : { ok: false, expected, hint };
}

/** Parses a duration such as 250ms, 30s, 5m, 1h or 1h30m into milliseconds. */
export function parseDuration(text: string): Parsed<number> {
  const value = text.trim();
  if (value === '') return fail(EXPECTED.duration);
  if (value.startsWith('-')) return fail(EXPECTED.duration, 'durations cannot be negative');
  if (NUMBER.test(value)) {
    return fail(EXPECTED.duration, `durations need a unit: write ${value}s or ${value}ms`);
  }
  const parts = value.match(/\d+(?:\.\d+)?[a-z]+/gi);
  if (!parts || parts.join('') !== value) return fail(EXPECTED.duration);
  let total = 0;
  let previousRank = -1;
  for (const part of parts) {
    const match = /^(\d+(?:\.\d+)?)([a-z]+)$/i.exec(part);
    const unit = match?.[2]?.toLowerCase() ?? '';
    const rank = DURATION_UNITS.findIndex(([name]) => name === unit);
    if (!match || rank < 0) {
      return fail(EXPECTED.duration, `unknown unit "${match?.[2] ?? part}"`);
    }
    if (rank <= previousRank) {
      return fail(EXPECTED.duration, 'write each unit once, largest first (1h30m, not 30m1h)');
    }
    previousRank = rank;
    total += Number(match[1]) * (DURATION_UNITS[rank]?.[1] ?? 0);
  }
  const rounded = Math.round(total);
  if (Math.abs(total - rounded) > 1e-6) {
    return fail(EXPECTED.duration, 'the smallest step is 1ms');
  }
  return { ok: true, value: rounded };
}

/** Parses a size such as 64KiB, 32MiB, 1GB or 512B into bytes. */
export function parseSize(text: string): Parsed<number> {
  const value = text.trim();
  if (value === '') return fail(EXPECTED.size);
  if (value.startsWith('-')) return fail(EXPECTED.size, 'sizes cannot be negative');
  if (NUMBER.test(value)) {
    return fail(EXPECTED.size, `sizes need a unit: write ${value}B or ${value}KiB`);
  }
  const match = /^(\d+(?:\.\d+)?)\s*([a-z]+)$/i.exec(value);
  if (!match) return fail(EXPECTED.size);
  const factor = SIZE_UNITS[(match[2] ?? '').toLowerCase()];
  if (factor === undefined) return fail(EXPECTED.size, `unknown unit "${match[2]}"`);
  const bytes = Number(match[1]) * factor;
  if (!Number.isInteger(bytes)) return fail(EXPECTED.size, 'the smallest step is 1B');
  return { ok: true, value: bytes };
}

/** Parses a percentage ("10%" or "10") into a number of percent (10). */
export function parsePercent(text: string): Parsed<number> {
  const value = text.trim();
  const match = /^(\d+(?:\.\d+)?)\s*%?$/.exec(value);
  if (!match) {
    return value.startsWith('-') ? fail(EXPECTED.percent, 'percentages cannot be negative') : fail(EXPECTED.percent);
  }
  return { ok: true, value: Number(match[1]) };
}

/** Parses true/false, yes/no, on/off or 1/0 (any case); nothing else. */
export function parseBool(text: string): Parsed<boolean> {
  const value = text.trim().toLowerCase();
  if (value === 'true' || value === 'yes' || value === 'on' || value === '1') return { ok: true, value: true };
  if (value === 'false' || value === 'no' || value === 'off' || value === '0') return { ok: true, value: false };
  return fail(EXPECTED.bool);
}

/** Parses a whole number written in decimal digits, optionally negative. */
export function parseInteger(text: string): Parsed<number> {
  const value = text.trim();
  if (!/^-?\d+$/.test(value)) return fail(EXPECTED.int);
  const number = Number(value);
  if (!Number.isSafeInteger(number)) return fail(EXPECTED.int, 'too large');
  return { ok: true, value: number };
}

/** Parses the seed guide's CLOUD_JOBS_POLLING_INTERVAL: plain milliseconds. */
export function parseMilliseconds(text: string): Parsed<number> {
  const value = text.trim();
  if (!/^\d+$/.test(value)) {
    return value.startsWith('-')
      ? fail(EXPECTED.milliseconds, 'durations cannot be negative')
      : fail(EXPECTED.milliseconds, 'this variable takes milliseconds without a unit, as the seed guide documents');
  }
  return { ok: true, value: Number(value) };
}

/** Splits a comma-separated list, trimming entries and dropping empty ones. */
export function parseList(text: string): string[] {
  return text
    .split(',')
    .map((entry) => entry.trim())
    .filter((entry) => entry !== '');
}

/** Parses an absolute http(s) URL with a host; returns it without a trailing slash. */
export function parseHttpUrl(text: string): Parsed<string> {
  const value = text.trim();
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return fail(EXPECTED.url, /^[a-z][a-z0-9+.-]*:\/\//i.test(value) ? undefined : 'add the scheme, e.g. https://');
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    return fail(EXPECTED.url, `the scheme ${url.protocol}// is not supported`);
  }
  if (url.hostname === '') return fail(EXPECTED.url, 'the URL has no host');
  if (url.username !== '' || url.password !== '') {
    return fail(EXPECTED.url, 'remove the user name and password from the URL; the API key authenticates the device');
  }
  if (url.search !== '' || url.hash !== '') {
    return fail(EXPECTED.url, 'remove the query and fragment; the agent appends its own paths');
  }
  return { ok: true, value: url.href.replace(/\/+$/, '') };
}

/** Parses mqtt.broker: empty, "off", or mqtt://host[:port] / mqtts://host[:port] (default ports 1883 / 8883). */
export function parseBrokerUrl(text: string): Parsed<string> {
  const value = text.trim();
  if (value === '' || value.toLowerCase() === 'off') return { ok: true, value: value.toLowerCase() };
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return fail(EXPECTED.broker, /^[a-z][a-z0-9+.-]*:\/\//i.test(value) ? undefined : 'add the scheme, e.g. mqtts://');
  }
  if (url.protocol !== 'mqtt:' && url.protocol !== 'mqtts:') {
    return fail(EXPECTED.broker, `the scheme ${url.protocol}// is not supported (MQTT over WebSocket is not either)`);
  }
  if (url.hostname === '') return fail(EXPECTED.broker, 'the URL has no host');
  if (url.username !== '' || url.password !== '') {
    return fail(EXPECTED.broker, 'remove the user name and password from the URL; set [mqtt] username and password_file');
  }
  if ((url.pathname !== '' && url.pathname !== '/') || url.search !== '' || url.hash !== '') {
    return fail(EXPECTED.broker, 'remove the path, query and fragment');
  }
  const port = url.port || (url.protocol === 'mqtts:' ? '8883' : '1883');
  return { ok: true, value: `${url.protocol}//${url.host.replace(/:\d+$/, '')}:${port}` };
}

/** Tells whether a URL host name is a loopback address (127.0.0.0/8, ::1, localhost). */
export function isLoopbackHost(hostname: string): boolean {
  const host = hostname.toLowerCase().replace(/^\[|\]$/g, '');
  if (host === 'localhost' || host.endsWith('.localhost')) return true;
  if (host === '::1' || host === '0:0:0:0:0:0:0:1') return true;
  const v4 = /^(?:::ffff:)?127\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(host);
  return v4 !== null && v4.slice(1).every((octet) => Number(octet) <= 255);
}

/** Writes milliseconds the way agent.ini takes them: 30s, 1h30m, 250ms, 0s. */
export function formatDuration(ms: number): string {
  if (ms === 0) return '0s';
  let rest = Math.round(ms);
  let text = '';
  for (const [unit, size] of DURATION_UNITS) {
    const count = Math.floor(rest / size);
    if (count > 0) {
      text += `${count}${unit}`;
      rest -= count * size;
    }
  }
  return text;
}

/** Writes bytes in the largest binary unit that divides them exactly: 64KiB, 1000B. */
export function formatSize(bytes: number): string {
  for (const [unit, size] of [['GiB', 1024 ** 3], ['MiB', 1024 ** 2], ['KiB', 1024]] as const) {
    if (bytes >= size && bytes % size === 0) return `${bytes / size}${unit}`;
  }
  return `${bytes}B`;
}

/** Writes a fraction (0.1) as agent.ini takes it: 10%. */
export function formatPercent(fraction: number): string {
  return `${Number((fraction * 100).toFixed(6))}%`;
}
