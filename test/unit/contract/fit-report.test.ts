import { describe, expect, it } from 'vitest';
import type { StatusReport } from '../../../src/contract/types.js';
import {
  escapedBytes,
  fitReport,
  MIN_REPORT_BUDGET,
  serializedBytes,
} from '../../../src/contract/fit-report.js';
import { createSeededRandom } from '../../seeded-random.js';

function report(extra: Partial<StatusReport> = {}): StatusReport {
  return {
    status: 'SUCCEEDED',
    exit_code: 0,
    stdout: '',
    stderr: '',
    reason: '1 of 1 steps succeeded',
    executed_steps: 1,
    failed_step: null,
    status_details: { agent_version: '1.0.0', duration_ms: 5, steps: [{ name: 'a', argv: ['/bin/true'] }] },
    ...extra,
  };
}

// Text mixing every cost class JSON.stringify has: ASCII, quotes and
// backslashes, short and \u escapes, 2-, 3- and 4-byte UTF-8, lone surrogates.
const PIECES = ['a', 'Z', ' ', '"', '\\', '\n', '\t', '\u0001', '\u001f', 'é', '€', '😀', '\ud800', '\udfff', '\u2028', '\u0000'];
function randomText(random: () => number, length: number): string {
  const parts: string[] = [];
  const bias = Math.floor(random() * PIECES.length);
  for (let i = 0; i < length; i += 1) {
    parts.push(random() < 0.5 ? PIECES[bias]! : PIECES[Math.floor(random() * PIECES.length)]!);
  }
  return parts.join('');
}

// Whether a string has a high surrogate followed by a low one that were not adjacent in the source.
function hasNoSplitPairs(original: string, cut: string, marker: RegExp): void {
  const match = marker.exec(cut);
  if (!match) return;
  const head = cut.slice(0, match.index);
  const tail = cut.slice(match.index + match[0].length);
  expect(original.startsWith(head)).toBe(true);
  expect(original.endsWith(tail)).toBe(true);
  // the head does not end in the first half of a pair the original continues
  const last = head.charCodeAt(head.length - 1);
  if (last >= 0xd800 && last <= 0xdbff) {
    const next = original.charCodeAt(head.length);
    expect(next >= 0xdc00 && next <= 0xdfff).toBe(false);
  }
  // the tail does not start with the second half of a pair the original had
  const first = tail.charCodeAt(0);
  if (first >= 0xdc00 && first <= 0xdfff) {
    const before = original.charCodeAt(original.length - tail.length - 1);
    expect(before >= 0xd800 && before <= 0xdbff).toBe(false);
  }
}

const MARKER = /\n\[\.\.\. \d+ bytes omitted to fit the report size limit \.\.\.\]\n/;

describe('escapedBytes', () => {
  it('counts what JSON.stringify writes for every kind of character', () => {
    const random = createSeededRandom(7);
    for (let i = 0; i < 200; i += 1) {
      const text = randomText(random, Math.floor(random() * 300));
      expect(escapedBytes(text)).toBe(Buffer.byteLength(JSON.stringify(text)) - 2);
    }
  });
});

describe('fitReport', () => {
  it('returns a report within the budget unchanged, as the same object', () => {
    const small = report({ stdout: 'hello\n' });
    const fitted = fitReport(small, 1024 * 1024);
    expect(fitted.report).toBe(small);
    expect(fitted.truncated).toBe(false);
    expect(fitted.bytes).toBe(serializedBytes(small));
  });

  it('cuts control-character output that is six times larger serialized, keeping head and tail', () => {
    const raw = `${'H'.repeat(100)}${'\u0001'.repeat(200_000)}${'T'.repeat(100)}`;
    const big = report({ stdout: raw, stderr: raw });
    expect(serializedBytes(big)).toBeGreaterThan(2_400_000);
    const fitted = fitReport(big, 100_000);
    expect(fitted.truncated).toBe(true);
    expect(fitted.bytes).toBeLessThanOrEqual(100_000);
    expect(fitted.bytes).toBe(serializedBytes(fitted.report));
    for (const text of [fitted.report.stdout, fitted.report.stderr]) {
      expect(text.startsWith('H'.repeat(100))).toBe(true);
      expect(text.endsWith('T'.repeat(100))).toBe(true);
      expect(text).toMatch(MARKER);
    }
    // proportional: the two equal streams keep about the same
    expect(Math.abs(escapedBytes(fitted.report.stdout) - escapedBytes(fitted.report.stderr))).toBeLessThan(16);
    expect(fitted.report.status_details.truncated).toMatchObject({
      budget_bytes: 100_000,
      stdout: { serialized_bytes: escapedBytes(raw) },
      stderr: { serialized_bytes: escapedBytes(raw) },
    });
    // the other fields are untouched
    expect(fitted.report.reason).toBe(big.reason);
    expect(fitted.report.status_details.steps).toEqual(big.status_details.steps);
  });

  it('shares the room in proportion to each stream\u2019s serialized size', () => {
    const fitted = fitReport(report({ stdout: 'o'.repeat(300_000), stderr: 'e'.repeat(100_000) }), 100_000);
    const out = fitted.report.stdout.length;
    const err = fitted.report.stderr.length;
    expect(out / err).toBeGreaterThan(2.8);
    expect(out / err).toBeLessThan(3.2);
  });

  it('states how many bytes the marker stands for', () => {
    const text = 'x'.repeat(50_000);
    const fitted = fitReport(report({ stdout: text }), 20_000);
    const said = Number(/(\d+) bytes omitted/.exec(fitted.report.stdout)![1]);
    expect(said + fitted.report.stdout.replace(MARKER, '').length).toBe(50_000);
    expect(fitted.report.stdout.startsWith('x'.repeat(9000))).toBe(true);
  });

  it('cuts the other fields to a small fixed shape when outputs alone cannot make room', () => {
    const argv = Array.from({ length: 2000 }, (_, i) => `argument-${i}-${'\u0002'.repeat(40)}`);
    const huge = report({
      status: 'FAILED',
      stdout: 'out'.repeat(1000),
      reason: `step 1 failed: ${'r'.repeat(100_000)}`,
      failed_step: 'f'.repeat(255),
      status_details: { agent_version: '1.0.0', duration_ms: 9, steps: [{ name: 'a', argv }] },
    });
    const fitted = fitReport(huge, MIN_REPORT_BUDGET);
    expect(fitted.bytes).toBeLessThanOrEqual(MIN_REPORT_BUDGET);
    expect(fitted.report.status).toBe('FAILED');
    expect(fitted.report.reason.startsWith('step 1 failed: rrr')).toBe(true);
    expect(fitted.report.reason.length).toBeLessThanOrEqual(513);
    expect(fitted.report.status_details).toMatchObject({
      agent_version: '1.0.0',
      duration_ms: 9,
      steps: [],
      truncated: { details: { steps_omitted: 1 }, budget_bytes: MIN_REPORT_BUDGET },
    });
  });

  it('treats a budget below the minimum as the minimum', () => {
    const fitted = fitReport(report({ stdout: 'y'.repeat(100_000) }), 10);
    expect(fitted.bytes).toBeLessThanOrEqual(MIN_REPORT_BUDGET);
    expect(fitted.bytes).toBeGreaterThan(MIN_REPORT_BUDGET / 2);
  });

  it('keeps every randomized report within its budget, valid JSON, with intact characters', () => {
    const random = createSeededRandom(20261201);
    for (let round = 0; round < 300; round += 1) {
      const stdout = randomText(random, Math.floor(random() * 20_000));
      const stderr = randomText(random, Math.floor(random() * 20_000));
      const reason = randomText(random, Math.floor(random() * (random() < 0.2 ? 5000 : 50)));
      const input = report({ stdout, stderr, reason, status_details: { steps: [{ name: randomText(random, 30) }] } });
      const budget = MIN_REPORT_BUDGET + Math.floor(random() * 60_000);
      const fitted = fitReport(input, budget);
      const json = JSON.stringify(fitted.report);
      const context = `round ${round}, budget ${budget}`;
      expect(Buffer.byteLength(json), context).toBeLessThanOrEqual(budget);
      expect(fitted.bytes, context).toBe(Buffer.byteLength(json));
      expect(JSON.parse(json), context).toEqual(fitted.report);
      expect(fitted.truncated, context).toBe(serializedBytes(input) > budget);
      // every cut lies between characters: head and tail are the original's own
      if (fitted.report.stdout !== stdout && fitted.report.stdout !== '') hasNoSplitPairs(stdout, fitted.report.stdout, MARKER);
      if (fitted.report.stderr !== stderr && fitted.report.stderr !== '') hasNoSplitPairs(stderr, fitted.report.stderr, MARKER);
      // UTF-8 intact: encoding the serialized report and decoding it again loses nothing
      expect(Buffer.from(json, 'utf8').toString('utf8'), context).toBe(json);
    }
  });
});
