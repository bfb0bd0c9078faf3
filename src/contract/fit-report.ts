// Keeps a status report within a byte budget measured on its serialized JSON,
// the form the server counts against its body limit (test/cloud/CONTRACT.md "Next job": 16 MiB).
// Output of control characters costs six bytes per byte written (`\u0001`), so
// the output limits per stream do not bound a report: this does.
//
// INVARIANTS
// - Buffer.byteLength(JSON.stringify(result)) <= budget whenever budget >=
//   MIN_REPORT_BUDGET; a report already within the budget comes back unchanged
//   (the same object).
// - stdout and stderr are cut proportionally to their serialized sizes, each
//   keeping a head and a tail joined by a marker saying how much was left out;
//   a cut falls between characters (never inside a surrogate pair, so never
//   inside a UTF-8 sequence or a JSON escape).
// - Only when the outputs alone cannot make room are the other fields cut
//   (reason, failed_step, status_details), down to a fixed small shape.
// - A cut report says so: status_details.truncated names what was cut.
import type { StatusReport } from './types.js';

/** The server's body limit (test/cloud/CONTRACT.md "Next job": bodies over 16 MiB are rejected). */
export const SERVER_BODY_LIMIT = 16 * 1024 * 1024;

/** The budget every report is made to fit: the server's limit with a quarter to spare. */
export const REPORT_BUDGET_BYTES = 12 * 1024 * 1024;

/** The smallest budget fitReport honours; every report can be cut to fit it. */
export const MIN_REPORT_BUDGET = 8 * 1024;

// What the fallback keeps of the free-text fields when the outputs alone do not make room.
const REASON_KEEP = 512;

/** What fitReport did. */
export interface FitResult {
  report: StatusReport;
  /** Whether anything was cut. */
  truncated: boolean;
  /** Serialized size of `report` in bytes. */
  bytes: number;
}

/** Returns the size of `value` serialized as JSON, in UTF-8 bytes. */
export function serializedBytes(value: unknown): number {
  return Buffer.byteLength(JSON.stringify(value), 'utf8');
}

/** Cuts `report` to at most `budget` serialized bytes (see INVARIANTS). */
export function fitReport(report: StatusReport, budget: number): FitResult {
  const limit = Math.max(MIN_REPORT_BUDGET, Math.floor(budget));
  const bytes = serializedBytes(report);
  if (bytes <= limit) return { report, truncated: false, bytes };

  const outputs = cutOutputs(report, limit, bytes);
  if (outputs !== null) return { report: outputs, truncated: true, bytes: serializedBytes(outputs) };
  const small = shrinkEverything(report, limit);
  return { report: small, truncated: true, bytes: serializedBytes(small) };
}

// Cuts stdout and stderr proportionally; null when the other fields alone exceed the budget.
function cutOutputs(report: StatusReport, limit: number, bytes: number): StatusReport | null {
  const sizes = { stdout: escapedBytes(report.stdout), stderr: escapedBytes(report.stderr) };
  // the note at its longest: kept_bytes never has more digits than serialized_bytes
  const longest = markTruncated(report.status_details, {
    stdout: { serialized_bytes: sizes.stdout, kept_bytes: sizes.stdout },
    stderr: { serialized_bytes: sizes.stderr, kept_bytes: sizes.stderr },
    budget_bytes: limit,
  });
  // everything but the two texts (their escaped content; the quotes stay), with the note
  const fixed = bytes - sizes.stdout - sizes.stderr + (serializedBytes(longest) - serializedBytes(report.status_details));
  const room = limit - fixed;
  if (room < 0) return null;
  const total = sizes.stdout + sizes.stderr;
  const share = (size: number): number => (size <= 0 ? 0 : Math.floor((room * size) / total));
  const stdout = cutText(report.stdout, sizes.stdout, share(sizes.stdout));
  const stderr = cutText(report.stderr, sizes.stderr, share(sizes.stderr));
  return {
    ...report,
    stdout: stdout.text,
    stderr: stderr.text,
    status_details: markTruncated(report.status_details, {
      stdout: { serialized_bytes: sizes.stdout, kept_bytes: stdout.kept },
      stderr: { serialized_bytes: sizes.stderr, kept_bytes: stderr.kept },
      budget_bytes: limit,
    }),
  };
}

// The last resort: outputs and details reduced to a fixed small shape (a
// 16 MiB job document can put megabytes of argv into status_details).
function shrinkEverything(report: StatusReport, limit: number): StatusReport {
  const details = report.status_details;
  const steps = Array.isArray(details.steps) ? details.steps.length : 0;
  const kept: Record<string, unknown> = {};
  for (const key of ['agent_version', 'duration_ms'] as const) {
    const value = details[key];
    if (typeof value === 'number' || (typeof value === 'string' && value.length <= 64)) kept[key] = value;
  }
  const base: StatusReport = {
    ...report,
    stdout: '',
    stderr: '',
    reason: cutChars(report.reason, REASON_KEEP),
    failed_step: report.failed_step === null ? null : cutChars(report.failed_step, 255),
    status_details: {
      ...kept,
      steps: [],
      truncated: { details: { steps_omitted: steps, original_bytes: serializedBytes(details) }, budget_bytes: limit },
    },
  };
  // with the fixed shape above, what is left for the outputs is small but positive
  const room = limit - serializedBytes(base);
  const sizes = { stdout: escapedBytes(report.stdout), stderr: escapedBytes(report.stderr) };
  const total = sizes.stdout + sizes.stderr;
  if (room <= 0 || total === 0) return base;
  const stdout = cutText(report.stdout, sizes.stdout, Math.floor((room * sizes.stdout) / total));
  const stderr = cutText(report.stderr, sizes.stderr, Math.floor((room * sizes.stderr) / total));
  return { ...base, stdout: stdout.text, stderr: stderr.text };
}

function markTruncated(details: Record<string, unknown>, note: Record<string, unknown>): Record<string, unknown> {
  return { ...details, truncated: note };
}

/** The marker put where a text was cut. */
export function cutMarker(omittedBytes: number): string {
  return `\n[... ${omittedBytes} bytes omitted to fit the report size limit ...]\n`;
}

function markerBytes(omitted: number): number {
  return escapedBytes(cutMarker(omitted));
}

/**
 * Keeps a head and a tail of `text` whose serialized (escaped) size, with the
 * marker, is at most `room` bytes. `size` is escapedBytes(text). With no room
 * even for the marker the text goes entirely (status_details.truncated says so).
 */
export function cutText(text: string, size: number, room: number): { text: string; kept: number } {
  if (size <= room) return { text, kept: size };
  const budget = room - markerBytes(size);
  if (budget < 0) return { text: '', kept: 0 };
  const headEnd = advance(text, 0, Math.ceil(budget / 2));
  const headBytes = escapedBytes(text.slice(0, headEnd));
  const tailStart = retreat(text, text.length, budget - headBytes, headEnd);
  const kept = headBytes + escapedBytes(text.slice(tailStart));
  return { text: `${text.slice(0, headEnd)}${cutMarker(size - kept)}${text.slice(tailStart)}`, kept };
}

// Index after the longest prefix from `start` costing at most `budget` serialized bytes.
function advance(text: string, start: number, budget: number): number {
  let at = start;
  let spent = 0;
  while (at < text.length) {
    const step = charAt(text, at);
    if (spent + step.cost > budget) break;
    spent += step.cost;
    at += step.units;
  }
  return at;
}

// Index of the longest suffix ending at `end`, not before `floor`, costing at most `budget`.
function retreat(text: string, end: number, budget: number, floor: number): number {
  let at = end;
  let spent = 0;
  while (at > floor) {
    const code = text.charCodeAt(at - 1);
    const pair = at - 2 >= floor && isLow(code) && isHigh(text.charCodeAt(at - 2));
    const cost = pair ? 4 : unitCost(code);
    if (spent + cost > budget) break;
    spent += cost;
    at -= pair ? 2 : 1;
  }
  return at;
}

function charAt(text: string, at: number): { units: number; cost: number } {
  const code = text.charCodeAt(at);
  if (isHigh(code) && at + 1 < text.length && isLow(text.charCodeAt(at + 1))) return { units: 2, cost: 4 };
  return { units: 1, cost: unitCost(code) };
}

/** Serialized size of a string's content (without its quotes), as JSON.stringify writes it. */
export function escapedBytes(text: string): number {
  let bytes = 0;
  for (let i = 0; i < text.length; i += 1) {
    const code = text.charCodeAt(i);
    if (isHigh(code) && i + 1 < text.length && isLow(text.charCodeAt(i + 1))) {
      bytes += 4;
      i += 1;
    } else {
      bytes += unitCost(code);
    }
  }
  return bytes;
}

// Bytes JSON.stringify writes for one UTF-16 unit that is not half of a pair.
function unitCost(code: number): number {
  if (code < 0x20) return code === 8 || code === 9 || code === 10 || code === 12 || code === 13 ? 2 : 6;
  if (code === 0x22 || code === 0x5c) return 2;
  if (code < 0x80) return 1;
  if (code < 0x800) return 2;
  if (isHigh(code) || isLow(code)) return 6; // a lone surrogate is written as \udXXX
  return 3;
}

function isHigh(code: number): boolean {
  return code >= 0xd800 && code <= 0xdbff;
}

function isLow(code: number): boolean {
  return code >= 0xdc00 && code <= 0xdfff;
}

function cutChars(text: string, max: number): string {
  if (text.length <= max) return text;
  const end = isHigh(text.charCodeAt(max - 1)) ? max - 1 : max;
  return `${text.slice(0, end)}…`;
}
