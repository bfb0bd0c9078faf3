// The text `cloudjobs check-config` prints: the effective configuration in INI
// form, secrets redacted, each value annotated with where it came from.
import { REDACTED, isSecretKey } from './load.js';
import { formatDuration, formatPercent, formatSize } from './parse-value.js';
import { SCHEMA, type Config, type KeySpec } from './schema.js';

/** What check-config says besides the configuration itself. */
export interface CheckConfigExtra {
  /** The config file that was read. */
  configFile: string;
  /** Where the device identity comes from, e.g. "registered identity in /var/lib/cloudjobs/identity.json". */
  identitySource: string;
  warnings: readonly string[];
  /** LoadedConfig.sources: `section.key` -> "default", the file path or a variable name. */
  sources?: Readonly<Record<string, string>>;
  /** LoadedConfig.disabledReason: why jobs will not run, or null. */
  disabledReason?: string | null;
}

/** Returns the effective configuration as commented INI text with secrets redacted. */
export function formatCheckConfig(config: Config, extra: CheckConfigExtra): string {
  const lines: string[] = [
    '# cloudjobs check-config: the configuration is valid',
    `# config file: ${extra.configFile}`,
    `# identity: ${extra.identitySource}`,
    `# jobs: ${extra.disabledReason ? `disabled (${extra.disabledReason})` : 'enabled'}`,
  ];
  for (const warning of extra.warnings) lines.push(`# warning: ${warning}`);
  const values = config as unknown as Record<string, Record<string, unknown>>;
  let section = '';
  for (const spec of SCHEMA) {
    if (spec.section !== section) {
      section = spec.section;
      lines.push('', `[${section}]`);
    }
    const value = formatValue(spec, values[spec.section]?.[spec.key]);
    const text = value === '' ? `${spec.key} =` : `${spec.key} = ${value}`;
    const source = extra.sources?.[`${spec.section}.${spec.key}`];
    lines.push(source === undefined || source === 'default' ? text : `${text}  ; from ${source}`);
  }
  return `${lines.join('\n')}\n`;
}

function formatValue(spec: KeySpec, value: unknown): string {
  if (isSecretKey(spec)) return value === '' ? '' : REDACTED;
  let text: string;
  if (value === null) text = '';
  else if (spec.kind === 'duration') text = formatDuration(value as number);
  else if (spec.kind === 'size') text = formatSize(value as number);
  else if (spec.kind === 'percent') text = formatPercent(value as number);
  else if (Array.isArray(value)) text = value.join(',');
  else text = String(value);
  return /[;#"']/.test(text) || text !== text.trim() ? JSON.stringify(text) : text;
}
