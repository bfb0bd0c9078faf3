import { describe, expect, it } from 'vitest';
import { formatCheckConfig } from '../../../src/config/check.js';
import { loadConfig } from '../../../src/config/load.js';

const FILE = '/etc/cloudjobs/agent.ini';
const SECRET = 'Sup3rSecretKeyValue';

function check(fileText: string, env: Record<string, string>): string {
  const loaded = loadConfig({ file: FILE, fileText, env });
  return formatCheckConfig(loaded.config, {
    configFile: FILE,
    identitySource: 'config (cloud.api_key and device.uuid)',
    warnings: loaded.warnings,
    sources: loaded.sources,
    disabledReason: loaded.disabledReason,
  });
}

describe('formatCheckConfig', () => {
  it('prints the header, the identity source, warnings and every section', () => {
    const text = check('[cloud]\napi_url = https://cloud.example.com/api/v1\n[polling]\ninterval = 1s\n', {});
    const lines = text.split('\n');
    expect(lines.slice(0, 5)).toEqual([
      '# cloudjobs check-config: the configuration is valid',
      `# config file: ${FILE}`,
      '# identity: config (cloud.api_key and device.uuid)',
      '# jobs: enabled',
      `# warning: polling.interval is 1s (set in ${FILE}); values below 5s are meant for tests and demos: a fleet polling this often loads the cloud`,
    ]);
    for (const section of ['[cloud]', '[device]', '[polling]', '[jobs]', '[agent]', '[logging]']) expect(lines).toContain(section);
    expect(lines).toContain(`api_url = https://cloud.example.com/api/v1  ; from ${FILE}`);
    expect(lines).toContain(`interval = 1s  ; from ${FILE}`);
    expect(lines).toContain('jitter = 10%');
    expect(lines).toContain('max_output = 64KiB');
    expect(lines).toContain('handler_dirs = /etc/cloudjobs/handlers,/usr/lib/cloudjobs/handlers');
    expect(lines).toContain('allow_insecure_http = false');
    expect(text.endsWith('\n')).toBe(true);
  });

  it('annotates values from the environment and says why jobs are disabled', () => {
    const text = check('', {
      CLOUD_API_URL: 'http://127.0.0.1:4002/api/v1',
      CLOUDJOBS_POLLING_INTERVAL: '1h30m',
      ENABLE_CLOUD_JOBS: 'true',
    });
    const lines = text.split('\n');
    expect(lines).toContain('api_url = http://127.0.0.1:4002/api/v1  ; from CLOUD_API_URL');
    expect(lines).toContain('interval = 1h30m  ; from CLOUDJOBS_POLLING_INTERVAL');
    expect(lines).toContain('enabled = false  ; from ENABLE_CLOUD_JOBS');
    expect(lines).toContain('# jobs: disabled (Job Engine not enabled: set ENABLE_JOB_ENGINE=true (cloud jobs depend on it))');
  });

  it('redacts the API key from the file and from DEVICE_API_KEY', () => {
    const fromFile = check(`[cloud]\napi_url = https://cloud.example.com\napi_key = ${SECRET}\n`, {});
    expect(fromFile).not.toContain(SECRET);
    expect(fromFile.split('\n')).toContain(`api_key = [redacted]  ; from ${FILE}`);
    const fromEnv = check('[cloud]\napi_url = https://cloud.example.com\n', { DEVICE_API_KEY: SECRET, DEBUG: 'true' });
    expect(fromEnv).not.toContain(SECRET);
    expect(fromEnv.split('\n')).toContain('api_key = [redacted]  ; from DEVICE_API_KEY');
    expect(fromEnv.split('\n')).toContain('level = debug  ; from DEBUG');
  });

  it('shows an unset API key as empty', () => {
    expect(check('[cloud]\napi_url = https://cloud.example.com\n', {}).split('\n')).toContain('api_key =');
  });

  it('is INI that loads back to the same configuration', () => {
    const first = loadConfig({
      file: FILE,
      fileText: '[cloud]\napi_url = https://cloud.example.com/api/v1\n[polling]\ninterval = 1h30m\njitter = 7%\n[jobs]\nmax_output = 2000B\n',
      env: {},
    });
    const text = formatCheckConfig(first.config, { configFile: FILE, identitySource: 'none', warnings: [], sources: first.sources });
    const second = loadConfig({ file: FILE, fileText: text, env: {} });
    expect(second.config).toEqual(first.config);
  });
});
