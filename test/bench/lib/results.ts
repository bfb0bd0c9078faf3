// The benchmark table: one row per figure with its baseline measured in the
// same run, the ratio, the target and a verdict; printed as text and written
// as RESULTS.md.
import type { MachineDescription } from './machine.js';

/** met/missed: a target was judged; report: no target, the number is the result; indicative: emulated; failed: the figure could not be measured. */
export type Verdict = 'met' | 'missed' | 'report' | 'indicative' | 'failed';

/** One line of the table. */
export interface ResultRow {
  /** Figure number and name, e.g. "1 idle RSS". */
  row: string;
  baseline: string;
  figure: string;
  /** figure / baseline; null when there is no meaningful ratio. */
  ratio: number | null;
  target: string;
  verdict: Verdict;
  /** How it was measured and, when a target is missed, why. */
  note: string;
}

/** Returns 'met' when `value` is at most `limit`, else 'missed'. */
export function judgeAtMost(value: number, limit: number): Verdict {
  return value <= limit ? 'met' : 'missed';
}

/** Formats a byte count as MiB/KiB with the exact bytes for small values. */
export function formatBytes(bytes: number): string {
  if (Math.abs(bytes) >= 1024 * 1024) return `${(bytes / (1024 * 1024)).toFixed(1)} MiB`;
  if (Math.abs(bytes) >= 1024) return `${(bytes / 1024).toFixed(1)} KiB`;
  return `${Math.round(bytes)} B`;
}

/** Formats a duration in ms with a unit that keeps 3 significant digits. */
export function formatMs(ms: number): string {
  if (ms >= 60_000) return `${(ms / 60_000).toFixed(1)} min`;
  if (ms >= 10_000) return `${(ms / 1000).toFixed(1)} s`;
  if (ms >= 1000) return `${(ms / 1000).toFixed(2)} s`;
  if (ms >= 10) return `${ms.toFixed(0)} ms`;
  if (ms >= 1) return `${ms.toFixed(2)} ms`;
  return `${(ms * 1000).toFixed(0)} µs`;
}

/** Returns the median of `values` (which must not be empty). */
export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/** Builds the row of a figure that could not be measured, naming the error. */
export function buildFailedRow(row: string, target: string, error: unknown): ResultRow {
  const message = error instanceof Error ? error.message : String(error);
  return { row, baseline: '-', figure: '-', ratio: null, target, verdict: 'failed', note: `not measured: ${message.split('\n')[0]}` };
}

const HEADERS = ['row', 'baseline', 'figure', 'ratio', 'target', 'verdict'] as const;

function cells(row: ResultRow): string[] {
  return [row.row, row.baseline, row.figure, row.ratio === null ? '-' : `${row.ratio.toFixed(2)}x`, row.target, row.verdict];
}

/** Renders the rows as a fixed-width text table for the terminal. */
export function renderTextTable(rows: readonly ResultRow[]): string {
  const table = [Array.from(HEADERS), ...rows.map(cells)];
  const widths = HEADERS.map((_, i) => Math.max(...table.map((line) => line[i]!.length)));
  const lines = table.map((line) => line.map((cell, i) => cell.padEnd(widths[i]!)).join('  ').trimEnd());
  lines.splice(1, 0, widths.map((w) => '-'.repeat(w)).join('  '));
  return `${lines.join('\n')}\n`;
}

/** What RESULTS.md is made of. */
export interface ResultsDocument {
  machine: MachineDescription;
  rows: readonly ResultRow[];
  /** Paragraphs on method (time scaling, emulation) printed above the table. */
  method: readonly string[];
  durationMs: number;
  /** The hand-written analysis of missed targets (test/bench/why-missed.md), kept with every run. */
  analysis?: string;
}

/** Renders RESULTS.md. */
export function renderResultsMarkdown(doc: ResultsDocument): string {
  const escape = (text: string): string => text.replace(/\|/g, '\\|');
  const m = doc.machine;
  const out: string[] = [];
  out.push('# cloudjobs benchmark results', '');
  out.push('Written by `make bench` (test/bench/); every figure is a ratio against a baseline measured in the same run. Benchmarks never fail the build: they report.', '');
  out.push('## Machine', '');
  out.push(`- date: ${m.date}`);
  out.push(`- CPU: ${m.cpuModel} (${m.cores} cores)`);
  out.push(`- memory: ${m.memory}`);
  out.push(`- kernel: ${m.kernel}`);
  out.push(`- OS: ${m.os}`);
  out.push(`- node (harness): ${m.harnessNode}; executables built from: ${m.agentNode}`);
  out.push(`- git: ${m.gitCommit}`);
  out.push(`- load average at start (1/5/15 min): ${m.loadAverage}`);
  out.push(`- whole run: ${formatMs(doc.durationMs)}`, '');
  out.push('## Results', '');
  out.push(`| ${HEADERS.join(' | ')} |`, `|${HEADERS.map(() => '---').join('|')}|`);
  for (const row of doc.rows) out.push(`| ${cells(row).map(escape).join(' | ')} |`);
  out.push('', '## Notes per row', '');
  for (const row of doc.rows) out.push(`- **${row.row}** (${row.verdict}): ${row.note}`);
  const missed = doc.rows.filter((row) => row.verdict === 'missed' || row.verdict === 'failed');
  out.push('', '## Targets missed', '');
  if (missed.length === 0) out.push('None in this run.');
  for (const row of missed) out.push(`- **${row.row}**: ${row.note}`);
  if (doc.analysis) out.push('', doc.analysis.trim());
  out.push('', '## Method', '');
  for (const paragraph of doc.method) out.push(`- ${paragraph}`);
  out.push('');
  return out.join('\n');
}
