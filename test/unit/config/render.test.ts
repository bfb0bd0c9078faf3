import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../../src/config/load.js';
import { renderConfigTable, renderSampleIni } from '../../../src/config/render.js';
import { SCHEMA, envNameOf } from '../../../src/config/schema.js';

const FILE = '/etc/cloudjobs/agent.ini';
const ENV = { CLOUD_API_URL: 'https://cloud.example.com/api/v1' };

/** Uncomments every key line ("#key = value") the way an operator would. */
function uncommentAll(sample: string): string {
  return sample.replace(/^#([a-z0-9_]+ =( .*)?)$/gm, '$1');
}

describe('renderSampleIni', () => {
  it('parses to the defaults as shipped, with every key commented out', () => {
    const sample = renderSampleIni();
    const shipped = loadConfig({ file: FILE, fileText: sample, env: ENV });
    const defaults = loadConfig({ file: FILE, fileText: '', env: ENV });
    expect(shipped.config).toEqual(defaults.config);
    expect(Object.values(shipped.sources).filter((source) => source === FILE)).toEqual([]);
  });

  it('parses to the defaults with every key uncommented', () => {
    const uncommented = uncommentAll(renderSampleIni()).replace(/^api_url =$/m, 'api_url = https://cloud.example.com/api/v1');
    const loaded = loadConfig({ file: FILE, fileText: uncommented, env: {} });
    const defaults = loadConfig({ file: FILE, fileText: '', env: ENV });
    expect(loaded.config).toEqual(defaults.config);
    const fromFile = Object.entries(loaded.sources).filter(([, source]) => source === FILE).map(([id]) => id);
    expect(fromFile).toEqual(SCHEMA.map((spec) => `${spec.section}.${spec.key}`));
  });

  it('has no trailing whitespace', () => {
    expect(renderSampleIni().split('\n').filter((line) => line !== line.trimEnd())).toEqual([]);
  });

  it('documents every key with its doc line, kind and environment variable, in schema order', () => {
    const lines = renderSampleIni().split('\n');
    let cursor = 0;
    for (const spec of SCHEMA) {
      const keyLine = lines.indexOf(spec.default === '' ? `#${spec.key} =` : `#${spec.key} = ${spec.default}`, cursor);
      expect(keyLine, `${spec.section}.${spec.key}`).toBeGreaterThan(cursor);
      expect(lines[keyLine - 2]).toBe(`# ${spec.doc}`);
      expect(lines[keyLine - 1]).toContain(`env ${envNameOf(spec)}`);
      cursor = keyLine;
    }
    expect(lines).toContain('[polling]');
    expect(lines[lines.indexOf('#interval = 30s') - 1]).toBe(
      '# duration from 100ms to 1d; env CLOUDJOBS_POLLING_INTERVAL, seed CLOUD_JOBS_POLLING_INTERVAL (milliseconds)',
    );
    expect(lines[lines.indexOf('#api_url =') - 1]).toBe('# URL; required; env CLOUDJOBS_CLOUD_API_URL, seed CLOUD_API_URL');
  });
});

describe('renderConfigTable', () => {
  it('has a header and one row per key, in schema order', () => {
    const rows = renderConfigTable().trimEnd().split('\n');
    expect(rows[0]).toBe('| Key | Default | Environment | Description |');
    expect(rows).toHaveLength(SCHEMA.length + 2);
    SCHEMA.forEach((spec, index) => {
      expect(rows[index + 2]?.startsWith(`| \`${spec.section}.${spec.key}\` | `)).toBe(true);
      expect(rows[index + 2]).toContain(`\`${envNameOf(spec)}\``);
    });
  });

  it('shows defaults, seed variables and kinds', () => {
    const rows = renderConfigTable().split('\n');
    expect(rows.find((row) => row.startsWith('| `polling.interval`'))).toBe(
      '| `polling.interval` | `30s` | `CLOUDJOBS_POLLING_INTERVAL`, `CLOUD_JOBS_POLLING_INTERVAL` (milliseconds) | ' +
        'Time between polls for a new job (values below 5s are for tests and demos) (duration from 100ms to 1d) |',
    );
    expect(rows.find((row) => row.startsWith('| `cloud.api_url`'))).toBe(
      '| `cloud.api_url` | (required) | `CLOUDJOBS_CLOUD_API_URL`, `CLOUD_API_URL` | ' +
        'Base URL of the cloud API, e.g. https://cloud.example.com/api/v1 (URL) |',
    );
    expect(rows.find((row) => row.startsWith('| `cloud.api_key`'))).toBe(
      '| `cloud.api_key` | (empty) | `CLOUDJOBS_CLOUD_API_KEY`, `DEVICE_API_KEY` | ' +
        'Device API key sent as X-Device-API-Key; prefer api_key_file or registration (secret) |',
    );
  });
});
