import { describe, expect, it } from 'vitest';
import {
  EXPECTED,
  formatDuration,
  formatPercent,
  formatSize,
  isLoopbackHost,
  parseBool,
  parseDuration,
  parseHttpUrl,
  parseInteger,
  parseList,
  parseMilliseconds,
  parsePercent,
  parseSize,
} from '../../../src/config/parse-value.js';

describe('parseDuration', () => {
  it.each([
    ['250ms', 250],
    ['30s', 30_000],
    ['5m', 300_000],
    ['1h', 3_600_000],
    ['1d', 86_400_000],
    ['1h30m', 5_400_000],
    ['1m30s500ms', 90_500],
    ['0s', 0],
    ['1.5s', 1500],
    [' 10S ', 10_000],
  ])('reads %s as %d ms', (text, ms) => {
    expect(parseDuration(text)).toEqual({ ok: true, value: ms });
  });

  it('rejects a number without a unit and says which units to add', () => {
    expect(parseDuration('30')).toEqual({
      ok: false,
      expected: EXPECTED.duration,
      hint: 'durations need a unit: write 30s or 30ms',
    });
  });

  it('rejects negative durations', () => {
    expect(parseDuration('-5s')).toEqual({ ok: false, expected: EXPECTED.duration, hint: 'durations cannot be negative' });
  });

  it('rejects unknown units, misordered units, fractions of a millisecond and junk', () => {
    expect(parseDuration('5w')).toEqual({ ok: false, expected: EXPECTED.duration, hint: 'unknown unit "w"' });
    expect(parseDuration('30m1h')).toEqual({
      ok: false,
      expected: EXPECTED.duration,
      hint: 'write each unit once, largest first (1h30m, not 30m1h)',
    });
    expect(parseDuration('1s1s')).toEqual({
      ok: false,
      expected: EXPECTED.duration,
      hint: 'write each unit once, largest first (1h30m, not 30m1h)',
    });
    expect(parseDuration('1.5ms')).toEqual({ ok: false, expected: EXPECTED.duration, hint: 'the smallest step is 1ms' });
    expect(parseDuration('soon')).toEqual({ ok: false, expected: EXPECTED.duration });
    expect(parseDuration('')).toEqual({ ok: false, expected: EXPECTED.duration });
    expect(parseDuration('1 h')).toEqual({ ok: false, expected: EXPECTED.duration });
  });
});

describe('parseSize', () => {
  it.each([
    ['64KiB', 65_536],
    ['32MiB', 33_554_432],
    ['1GiB', 1_073_741_824],
    ['512B', 512],
    ['1KB', 1000],
    ['2MB', 2_000_000],
    ['1GB', 1_000_000_000],
    ['64kib', 65_536],
    ['1.5KiB', 1536],
  ])('reads %s as %d bytes', (text, bytes) => {
    expect(parseSize(text)).toEqual({ ok: true, value: bytes });
  });

  it('rejects sizes without a unit, negative, unknown units and fractional bytes', () => {
    expect(parseSize('65536')).toEqual({ ok: false, expected: EXPECTED.size, hint: 'sizes need a unit: write 65536B or 65536KiB' });
    expect(parseSize('-1KiB')).toEqual({ ok: false, expected: EXPECTED.size, hint: 'sizes cannot be negative' });
    expect(parseSize('1TB')).toEqual({ ok: false, expected: EXPECTED.size, hint: 'unknown unit "TB"' });
    expect(parseSize('1.5B')).toEqual({ ok: false, expected: EXPECTED.size, hint: 'the smallest step is 1B' });
    expect(parseSize('big')).toEqual({ ok: false, expected: EXPECTED.size });
  });
});

describe('parsePercent', () => {
  it('reads 10% and 10 alike, and decimals', () => {
    expect(parsePercent('10%')).toEqual({ ok: true, value: 10 });
    expect(parsePercent('10')).toEqual({ ok: true, value: 10 });
    expect(parsePercent('2.5%')).toEqual({ ok: true, value: 2.5 });
  });

  it('rejects negative and non-numeric values', () => {
    expect(parsePercent('-5%')).toEqual({ ok: false, expected: EXPECTED.percent, hint: 'percentages cannot be negative' });
    expect(parsePercent('ten')).toEqual({ ok: false, expected: EXPECTED.percent });
    expect(parsePercent('0.1x')).toEqual({ ok: false, expected: EXPECTED.percent });
  });
});

describe('parseBool', () => {
  it.each(['true', 'TRUE', 'yes', 'On', '1'])('reads %s as true', (text) => {
    expect(parseBool(text)).toEqual({ ok: true, value: true });
  });
  it.each(['false', 'False', 'no', 'OFF', '0'])('reads %s as false', (text) => {
    expect(parseBool(text)).toEqual({ ok: true, value: false });
  });
  it.each(['y', 'enabled', '2', ''])('rejects %j', (text) => {
    expect(parseBool(text)).toEqual({ ok: false, expected: EXPECTED.bool });
  });
});

describe('parseInteger and parseMilliseconds', () => {
  it('reads whole numbers only', () => {
    expect(parseInteger('42')).toEqual({ ok: true, value: 42 });
    expect(parseInteger('-3')).toEqual({ ok: true, value: -3 });
    expect(parseInteger('4.0')).toEqual({ ok: false, expected: EXPECTED.int });
    expect(parseInteger('4x')).toEqual({ ok: false, expected: EXPECTED.int });
    expect(parseInteger('99999999999999999999')).toEqual({ ok: false, expected: EXPECTED.int, hint: 'too large' });
  });

  it('reads the seed interval as plain milliseconds and nothing else', () => {
    expect(parseMilliseconds('30000')).toEqual({ ok: true, value: 30_000 });
    expect(parseMilliseconds('30s')).toEqual({
      ok: false,
      expected: EXPECTED.milliseconds,
      hint: 'this variable takes milliseconds without a unit, as the seed guide documents',
    });
    expect(parseMilliseconds('-1')).toEqual({ ok: false, expected: EXPECTED.milliseconds, hint: 'durations cannot be negative' });
  });
});

describe('parseList', () => {
  it('splits on commas, trims and drops empty entries', () => {
    expect(parseList(' a, b ,,c ')).toEqual(['a', 'b', 'c']);
    expect(parseList('')).toEqual([]);
  });
});

describe('parseHttpUrl', () => {
  it('accepts absolute http(s) URLs and drops the trailing slash', () => {
    expect(parseHttpUrl('https://cloud.example.com/api/v1/')).toEqual({ ok: true, value: 'https://cloud.example.com/api/v1' });
    expect(parseHttpUrl('http://127.0.0.1:4002/api/v1')).toEqual({ ok: true, value: 'http://127.0.0.1:4002/api/v1' });
    expect(parseHttpUrl('https://cloud.example.com')).toEqual({ ok: true, value: 'https://cloud.example.com' });
  });

  it('rejects a URL without a scheme and says to add it', () => {
    expect(parseHttpUrl('cloud.example.com/api/v1')).toEqual({ ok: false, expected: EXPECTED.url, hint: 'add the scheme, e.g. https://' });
  });

  it('rejects other schemes, credentials, queries and fragments', () => {
    expect(parseHttpUrl('ftp://cloud.example.com')).toEqual({
      ok: false,
      expected: EXPECTED.url,
      hint: 'the scheme ftp:// is not supported',
    });
    expect(parseHttpUrl('https://u:p@cloud.example.com')).toEqual({
      ok: false,
      expected: EXPECTED.url,
      hint: 'remove the user name and password from the URL; the API key authenticates the device',
    });
    expect(parseHttpUrl('https://cloud.example.com/api?x=1')).toEqual({
      ok: false,
      expected: EXPECTED.url,
      hint: 'remove the query and fragment; the agent appends its own paths',
    });
    expect(parseHttpUrl('https://')).toEqual({ ok: false, expected: EXPECTED.url });
  });
});

describe('isLoopbackHost', () => {
  it.each(['127.0.0.1', '127.5.6.7', 'localhost', 'LOCALHOST', 'api.localhost', '[::1]', '::1'])('%s is loopback', (host) => {
    expect(isLoopbackHost(host)).toBe(true);
  });
  it.each(['10.0.0.1', '128.0.0.1', 'cloud-api', '127.0.0.1.nip.io', '[::2]', '127.0.0.256'])('%s is not loopback', (host) => {
    expect(isLoopbackHost(host)).toBe(false);
  });
});

describe('formatters', () => {
  it('write durations, sizes and percentages back in the form agent.ini takes', () => {
    expect(formatDuration(5_400_000)).toBe('1h30m');
    expect(formatDuration(250)).toBe('250ms');
    expect(formatDuration(0)).toBe('0s');
    expect(formatDuration(86_400_000 + 1)).toBe('1d1ms');
    expect(formatSize(65_536)).toBe('64KiB');
    expect(formatSize(33_554_432)).toBe('32MiB');
    expect(formatSize(1000)).toBe('1000B');
    expect(formatPercent(0.1)).toBe('10%');
    expect(formatPercent(0.07)).toBe('7%');
  });

  it('round-trip through the parsers', () => {
    for (const ms of [1, 999, 1000, 61_000, 3_723_004, 90_061_001]) {
      expect(parseDuration(formatDuration(ms))).toEqual({ ok: true, value: ms });
    }
    for (const bytes of [1, 1023, 1024, 1536, 1_048_576, 5 * 1024 ** 3]) {
      expect(parseSize(formatSize(bytes))).toEqual({ ok: true, value: bytes });
    }
  });
});
