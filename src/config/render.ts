// Renders the documentation that derives from SCHEMA: the commented sample
// /etc/cloudjobs/agent.ini shipped as a conffile, and the README config table.
import { formatDuration, formatSize } from './parse-value.js';
import { SCHEMA, envNameOf, type KeySpec } from './schema.js';

const SEED_VARIABLES: Readonly<Record<string, string>> = {
  'cloud.api_url': 'CLOUD_API_URL',
  'cloud.api_key': 'DEVICE_API_KEY',
  'device.uuid': 'DEVICE_UUID',
  'polling.interval': 'CLOUD_JOBS_POLLING_INTERVAL (milliseconds)',
  'jobs.enabled': 'ENABLE_CLOUD_JOBS with ENABLE_JOB_ENGINE',
  'logging.level': 'DEBUG=true (debug)',
};

/** Returns the sample agent.ini: every key commented out with its doc line, default and variables. */
export function renderSampleIni(): string {
  const lines: string[] = [
    '# /etc/cloudjobs/agent.ini: configuration of the cloudjobs agent.',
    '#',
    '# Every key is listed, commented out, with its default. To change one, remove',
    '# the leading "#" of its line and edit the value; this file is a conffile, so',
    '# your edits survive upgrades. Check the result with: cloudjobs check-config',
    '#',
    '# Durations take units (250ms, 30s, 5m, 1h, 1d, 1h30m); sizes take units',
    '# (B, KiB, MiB, GiB; KB, MB, GB are 1000-based); lists are comma-separated;',
    '# booleans are true/false (also yes/no, on/off, 1/0). Quote a value that',
    '# contains ; or #, which otherwise start a comment.',
    '#',
    '# Every key can be overridden by the environment variable',
    '# CLOUDJOBS_<SECTION>_<KEY> (e.g. CLOUDJOBS_POLLING_INTERVAL=10s), which wins',
    '# over this file. The seed guide\'s variables keep working too (below this',
    '# file, above the defaults): CLOUD_API_URL, CLOUD_JOBS_POLLING_INTERVAL',
    '# (milliseconds), DEBUG, DEVICE_API_KEY, DEVICE_UUID, ENABLE_CLOUD_JOBS and',
    '# ENABLE_JOB_ENGINE.',
  ];
  let section = '';
  for (const spec of SCHEMA) {
    if (spec.section !== section) {
      section = spec.section;
      lines.push('', `[${section}]`);
    }
    lines.push('', `# ${spec.doc}`);
    lines.push(`# ${describeKey(spec)}`);
    lines.push(spec.default === '' ? `#${spec.key} =` : `#${spec.key} = ${spec.default}`);
  }
  return `${lines.join('\n')}\n`;
}

/** Returns the README table of every key: section.key | default | environment | description. */
export function renderConfigTable(): string {
  const rows = [
    '| Key | Default | Environment | Description |',
    '|-----|---------|-------------|-------------|',
  ];
  for (const spec of SCHEMA) {
    const id = `${spec.section}.${spec.key}`;
    const seed = SEED_VARIABLES[id];
    const env = `\`${envNameOf(spec)}\`${seed ? `, ${seed.replace(/^(\S+)/, '`$1`')}` : ''}`;
    const fallback = spec.required ? '(required)' : '(empty)';
    const value = spec.default === '' ? fallback : `\`${spec.default}\``;
    rows.push(`| \`${id}\` | ${value} | ${env} | ${escapeCell(describeForTable(spec))} |`);
  }
  return `${rows.join('\n')}\n`;
}

function describeKey(spec: KeySpec): string {
  const parts = [`${kindName(spec)}${rangeOf(spec)}`];
  if (spec.required) parts.push('required');
  const seed = SEED_VARIABLES[`${spec.section}.${spec.key}`];
  parts.push(`env ${envNameOf(spec)}${seed ? `, seed ${seed}` : ''}`);
  return parts.join('; ');
}

function describeForTable(spec: KeySpec): string {
  return `${spec.doc} (${kindName(spec)}${rangeOf(spec)})`;
}

function rangeOf(spec: KeySpec): string {
  if (spec.min === undefined || spec.max === undefined) return '';
  const show = (n: number): string =>
    spec.kind === 'duration' ? formatDuration(n) : spec.kind === 'size' ? formatSize(n) : spec.kind === 'percent' ? `${n}%` : String(n);
  return ` from ${show(spec.min)} to ${show(spec.max)}`;
}

function kindName(spec: KeySpec): string {
  switch (spec.kind) {
    case 'enum':
    case 'level':
      return `one of ${(spec.values ?? []).join(', ')}`;
    case 'duration':
      return 'duration';
    case 'size':
      return 'size';
    case 'percent':
      return 'percentage';
    case 'int':
      return 'whole number';
    case 'bool':
      return 'boolean';
    case 'list':
      return 'comma-separated list';
    case 'url':
      return 'URL';
    case 'path':
      return 'absolute path';
    case 'secret':
      return 'secret';
    case 'string':
      return 'text';
  }
}

function escapeCell(text: string): string {
  return text.replace(/\|/g, '\\|');
}
