// Making hostile text (anything a server or a step's user wrote: job names and
// ids, step names, reasons, server messages, file names) safe to show: on a
// console line, in `cloudjobs status`/`history` on a terminal, in a journal
// field. This module imports nothing.

// C0 controls, DEL, C1 controls (ESC-less CSI is 0x9b), the Unicode line and
// paragraph separators and the bidirectional overrides/isolates that can make
// a terminal show text in another order than it is.
const UNSAFE = /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;
const NAMED: Readonly<Record<string, string>> = { '\n': '\\n', '\r': '\\r', '\t': '\\t' };

/**
 * Returns `text` with every control character written as an escape (`\n`,
 * `\u001b`, ...), so it stays on one line and cannot move the cursor or colour
 * a terminal. A backslash is doubled only where the text also needed escaping,
 * so ordinary text (Windows paths included) reads unchanged.
 */
export function escapeText(text: string): string {
  UNSAFE.lastIndex = 0;
  if (!UNSAFE.test(text)) return text;
  return text.replace(/[\\]/g, '\\\\').replace(UNSAFE, (c) => NAMED[c] ?? `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

// What JSON.stringify leaves raw although a terminal may act on it.
const UNSAFE_IN_JSON = /[\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;

/**
 * Returns JSON text (JSON.stringify output, which already escapes C0 controls)
 * with the remaining terminal-active characters as \u escapes: still the same JSON.
 */
export function escapeJsonText(json: string): string {
  return json.replace(UNSAFE_IN_JSON, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/**
 * Returns at most `max` characters of `text` (UTF-16 code units, never
 * splitting a surrogate pair), with a marker saying how many were left out.
 */
export function truncateText(text: string, max: number): string {
  if (text.length <= max) return text;
  let end = max;
  const last = text.charCodeAt(end - 1);
  if (last >= 0xd800 && last <= 0xdbff) end -= 1;
  return `${text.slice(0, end)}…[${text.length - end} more characters]`;
}

/** escapeText and truncateText together: what a line about server text shows of it. */
export function showText(text: string, max = 300): string {
  return escapeText(truncateText(text, max));
}
