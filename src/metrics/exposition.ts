// The Prometheus text exposition format (version 0.0.4), the few parts the
// agent uses: counters and gauges with labels, one histogram. Written here
// rather than taken from prom-client: see README, "Metrics". Pure.

/** One sample: labels and value. */
export interface Sample {
  labels?: Readonly<Record<string, string>>;
  value: number;
}

/** A metric family as it is rendered. */
export type Family =
  | { name: string; help: string; type: 'counter' | 'gauge'; samples: readonly Sample[] }
  | { name: string; help: string; type: 'histogram'; buckets: readonly number[]; counts: readonly number[]; sum: number; count: number };

/** The Content-Type of the format. */
export const EXPOSITION_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

/** Renders families in the text format, each with HELP and TYPE. */
export function renderExposition(families: readonly Family[]): string {
  const lines: string[] = [];
  for (const family of families) {
    lines.push(`# HELP ${family.name} ${escapeHelp(family.help)}`, `# TYPE ${family.name} ${family.type}`);
    if (family.type === 'histogram') {
      // counts are per bucket; the format wants cumulative counts
      let cumulative = 0;
      family.buckets.forEach((bound, i) => {
        cumulative += family.counts[i] ?? 0;
        lines.push(`${family.name}_bucket{le="${formatNumber(bound)}"} ${cumulative}`);
      });
      lines.push(`${family.name}_bucket{le="+Inf"} ${family.count}`, `${family.name}_sum ${formatNumber(family.sum)}`, `${family.name}_count ${family.count}`);
      continue;
    }
    for (const sample of family.samples) lines.push(`${family.name}${formatLabels(sample.labels)} ${formatNumber(sample.value)}`);
  }
  return `${lines.join('\n')}\n`;
}

function formatLabels(labels: Readonly<Record<string, string>> | undefined): string {
  const entries = Object.entries(labels ?? {});
  if (entries.length === 0) return '';
  return `{${entries.map(([k, v]) => `${k}="${escapeLabelValue(v)}"`).join(',')}}`;
}

/** Escapes a label value: backslash, double quote and newline. */
export function escapeLabelValue(value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

function escapeHelp(text: string): string {
  return text.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');
}

function formatNumber(value: number): string {
  if (Number.isNaN(value)) return 'NaN';
  if (value === Infinity) return '+Inf';
  if (value === -Infinity) return '-Inf';
  return String(value);
}
