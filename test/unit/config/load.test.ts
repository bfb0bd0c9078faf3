import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ConfigError, type ConfigProblem } from '../../../src/errors/errors.js';
import { loadConfig, suggest, type LoadedConfig, type LoadOptions } from '../../../src/config/load.js';
import { EXPECTED } from '../../../src/config/parse-value.js';

const FILE = '/etc/cloudjobs/agent.ini';
const BASE = '[cloud]\napi_url = https://cloud.example.com/api/v1\n';

function load(fileText: string, env: Record<string, string> = {}, extra: Partial<LoadOptions> = {}): LoadedConfig {
  return loadConfig({ file: FILE, fileText, env, ...extra });
}

function problemsOf(fileText: string, env: Record<string, string> = {}, extra: Partial<LoadOptions> = {}): ConfigProblem[] {
  try {
    load(fileText, env, extra);
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return [...(error as ConfigError).problems];
  }
  throw new Error('expected a ConfigError');
}

function errorOf(fileText: string, env: Record<string, string> = {}): ConfigError {
  try {
    load(fileText, env);
  } catch (error) {
    return error as ConfigError;
  }
  throw new Error('expected a ConfigError');
}

describe('defaults and types', () => {
  it('gives every default, converted to ms, bytes and fractions', () => {
    const { config, sources, warnings, disabledReason } = load(BASE);
    expect(config).toEqual({
      cloud: {
        api_url: 'https://cloud.example.com/api/v1',
        api_generation: 'auto',
        api_key: '',
        api_key_file: '',
        request_timeout: 30_000,
        allow_insecure_http: false,
        ca_file: '',
        pin_sha256: [],
        client_cert: '',
        client_key: '',
      },
      device: {
        uuid: '',
        provisioning_key_file: '',
        device_name: '',
        device_type: '',
        supervisor_url: 'http://127.0.0.1:48484',
      },
      polling: { interval: 30_000, jitter: 0.1, max_backoff: 300_000 },
      jobs: {
        enabled: true,
        run_as_user: 'cloudjobs',
        allowed_users: [],
        handler_dirs: ['/etc/cloudjobs/handlers', '/usr/lib/cloudjobs/handlers'],
        work_dir: '/var/cache/cloudjobs/work',
        default_timeout: 3_600_000,
        kill_grace: 10_000,
        max_output: 65_536,
        progress_interval: 10_000,
        max_parallel: 4,
        path: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
        max_reboots: 3,
        reboot_timeout: 600_000,
        reboot_command: 'systemctl reboot',
        maintenance_windows: [],
        hold_dir: '/run/cloudjobs-holds',
        memory_max: 268_435_456,
        tasks_max: 512,
        cpu_quota: 0.8,
        reboot_users: [],
      },
      agent: {
        state_dir: '/var/lib/cloudjobs',
        runtime_dir: '/run/cloudjobs',
        boot_id_file: '/proc/sys/kernel/random/boot_id',
        drain_timeout: 300_000,
        history_size: 100,
        history_max_bytes: 16_777_216,
        outbox_max_reports: 1000,
        outbox_max_bytes: 33_554_432,
      },
      mqtt: {
        broker: '',
        username: '',
        password_file: '',
        client_id: '',
        tenant_id: '',
        keepalive: 60_000,
        poll_interval_when_connected: null,
        allow_insecure: false,
        ca_file: '',
        pin_sha256: [],
        client_cert: '',
        client_key: '',
      },
      security: { trusted_keys_dir: '/etc/cloudjobs/trusted-keys.d', require_signed_jobs: false },
      metrics: { listen: '', allow_remote: false, textfile: '' },
      logging: { level: 'info' },
    });
    expect(sources['cloud.api_url']).toBe(FILE);
    expect(sources['polling.interval']).toBe('default');
    expect(warnings).toEqual([]);
    expect(disabledReason).toBeNull();
  });

  it('returns a deeply frozen config', () => {
    const { config, sources } = load(BASE);
    expect(Object.isFrozen(config)).toBe(true);
    expect(Object.isFrozen(config.polling)).toBe(true);
    expect(Object.isFrozen(config.jobs.handler_dirs)).toBe(true);
    expect(Object.isFrozen(sources)).toBe(true);
    expect(() => {
      (config.polling as { interval: number }).interval = 1;
    }).toThrow(TypeError);
  });

  it('reads every kind from the file', () => {
    const { config } = load(
      `${BASE}api_generation = Agents\npin_sha256 = sha256//${'A'.repeat(43)}=, ${'B'.repeat(43)}=\n` +
        '[polling]\ninterval = 1h30m\njitter = 25\nmax_backoff = 2m\n' +
        '[jobs]\nenabled = no\nallowed_users = pi, deploy\nmax_output = 1MiB\nmax_parallel = 8\n' +
        '[logging]\nlevel = debug\n',
    );
    expect(config.cloud.api_generation).toBe('agents');
    expect(config.cloud.pin_sha256).toEqual([`${'A'.repeat(43)}=`, `${'B'.repeat(43)}=`]);
    expect(config.polling).toEqual({ interval: 5_400_000, jitter: 0.25, max_backoff: 120_000 });
    expect(config.jobs.enabled).toBe(false);
    expect(config.jobs.allowed_users).toEqual(['pi', 'deploy']);
    expect(config.jobs.max_output).toBe(1_048_576);
    expect(config.jobs.max_parallel).toBe(8);
    expect(config.logging.level).toBe('debug');
  });

  it('reads a file saved with a byte-order mark and CRLF line ends', () => {
    const { config } = load('\uFEFF[cloud]\r\napi_url = https://cloud.example.com\r\n[polling]\r\ninterval = 45s\r\n');
    expect(config.cloud.api_url).toBe('https://cloud.example.com');
    expect(config.polling.interval).toBe(45_000);
  });

  it('ignores comments and reads quoted values', () => {
    const { config } = load(`${BASE}; comment\n# comment\napi_key = "a;b#c"\n[jobs]\nrun_as_user = pi ; inline\n`);
    expect(config.cloud.api_key).toBe('a;b#c');
    expect(config.jobs.run_as_user).toBe('pi');
  });
});

describe('bad input: every problem at once', () => {
  it('reports wrong types with key, expected form and value seen', () => {
    const problems = problemsOf(
      `${BASE}allow_insecure_http = maybe\n[polling]\ninterval = 30\njitter = lots\nmax_backoff = -5s\n` +
        '[jobs]\nmax_output = 65536\nmax_parallel = four\n[logging]\nlevel = verbose\n',
    );
    expect(problems).toEqual([
      { key: 'cloud.allow_insecure_http', expected: EXPECTED.bool, seen: 'maybe' },
      { key: 'polling.interval', expected: EXPECTED.duration, seen: '30', hint: 'durations need a unit: write 30s or 30ms' },
      { key: 'polling.jitter', expected: EXPECTED.percent, seen: 'lots' },
      { key: 'polling.max_backoff', expected: EXPECTED.duration, seen: '-5s', hint: 'durations cannot be negative' },
      { key: 'jobs.max_output', expected: EXPECTED.size, seen: '65536', hint: 'sizes need a unit: write 65536B or 65536KiB' },
      { key: 'jobs.max_parallel', expected: EXPECTED.int, seen: 'four' },
      { key: 'logging.level', expected: 'one of error, warn, info, debug', seen: 'verbose' },
    ]);
  });

  it('puts every problem in the error message, one per line', () => {
    const error = errorOf('[polling]\ninterval = 30\n');
    expect(error.code).toBe('CONFIG');
    expect(error.message).toBe(
      'invalid configuration (2 problems):\n' +
        `  polling.interval: expected ${EXPECTED.duration}, got 30 (durations need a unit: write 30s or 30ms)\n` +
        `  cloud.api_url: expected ${EXPECTED.url}, got (empty) (set api_url in [cloud] of ${FILE}, or the environment variable CLOUDJOBS_CLOUD_API_URL or CLOUD_API_URL)`,
    );
  });

  it('enforces the schema bounds in the unit of the key', () => {
    expect(problemsOf(`${BASE}[polling]\ninterval = 50ms\njitter = 150%\n[jobs]\nmax_parallel = 0\nmax_output = 100B\n`)).toEqual([
      { key: 'polling.interval', expected: 'a duration from 100ms to 1d', seen: '50ms' },
      { key: 'polling.jitter', expected: 'a percentage from 0% to 100%', seen: '150%' },
      { key: 'jobs.max_output', expected: 'a size from 1024B to 16777216B', seen: '100B' },
      { key: 'jobs.max_parallel', expected: 'a whole number from 1 to 64', seen: '0' },
    ]);
  });

  it('names an unknown section and suggests the nearest', () => {
    expect(problemsOf(`${BASE}[pollng]\ninterval = 5s\n[frobnicate]\nx = 1\n`)).toEqual([
      {
        key: '[pollng]',
        expected: 'a known section: [cloud], [device], [polling], [jobs], [agent], [mqtt], [security], [metrics], [logging]',
        seen: '[pollng]',
        hint: 'did you mean [polling]?',
      },
      {
        key: '[frobnicate]',
        expected: 'a known section: [cloud], [device], [polling], [jobs], [agent], [mqtt], [security], [metrics], [logging]',
        seen: '[frobnicate]',
      },
    ]);
  });

  it('names an unknown key, suggests the nearest, or the section it belongs in', () => {
    expect(problemsOf(`${BASE}[polling]\nintervall = 5s\nlevel = debug\n`)).toEqual([
      {
        key: 'polling.intervall',
        expected: 'a key of [polling]: interval, jitter, max_backoff',
        seen: 'intervall = 5s',
        hint: 'did you mean interval?',
      },
      {
        key: 'polling.level',
        expected: 'a key of [polling]: interval, jitter, max_backoff',
        seen: 'level = debug',
        hint: 'level belongs in [logging]',
      },
    ]);
  });

  it('rejects keys before any section, nested sections and repeated keys', () => {
    expect(problemsOf(`interval = 5s\n${BASE}[cloud.tls]\nx = 1\n[jobs]\nkill_grace = 1s\nkill_grace = 2s\n`)).toEqual([
      {
        key: 'interval',
        expected: 'every key inside a [section]',
        seen: 'interval = 5s before any [section]',
        hint: 'did you mean to put it under [polling]?',
      },
      {
        key: '[cloud.tls]',
        expected: 'a known section: [cloud], [device], [polling], [jobs], [agent], [mqtt], [security], [metrics], [logging]',
        seen: '[cloud.tls]',
        hint: 'sections do not nest',
      },
      { key: 'jobs.kill_grace', expected: 'the key once', seen: '1s and 2s', hint: 'remove all but one of the lines' },
    ]);
  });

  it('rejects an api_url without scheme and a missing one', () => {
    expect(problemsOf('[cloud]\napi_url = cloud.example.com/api/v1\n')).toEqual([
      { key: 'cloud.api_url', expected: EXPECTED.url, seen: 'cloud.example.com/api/v1', hint: 'add the scheme, e.g. https://' },
    ]);
    expect(problemsOf('')).toEqual([
      {
        key: 'cloud.api_url',
        expected: EXPECTED.url,
        seen: '(empty)',
        hint: `set api_url in [cloud] of ${FILE}, or the environment variable CLOUDJOBS_CLOUD_API_URL or CLOUD_API_URL`,
      },
    ]);
  });

  it('does not require api_url when the caller says so', () => {
    expect(load('', {}, { requireApiUrl: false }).config.cloud.api_url).toBe('');
  });

  it('rejects relative paths, bad user names, bad PATH entries and bad uuids', () => {
    expect(
      problemsOf(
        `${BASE}[device]\nuuid = ../../admin\n[jobs]\nrun_as_user = "bad user"\nallowed_users = pi, x!y\n` +
          'handler_dirs = handlers\nwork_dir = work\npath = /usr/bin:bin\n',
      ),
    ).toEqual([
      { key: 'device.uuid', expected: 'a device uuid made of letters, digits, - and _', seen: '../../admin', hint: 'it becomes part of every request path' },
      { key: 'jobs.run_as_user', expected: 'a user name such as cloudjobs', seen: 'bad user' },
      { key: 'jobs.allowed_users', expected: 'comma-separated user names', seen: 'pi, x!y', hint: 'x!y is not a user name' },
      { key: 'jobs.handler_dirs', expected: 'comma-separated absolute paths', seen: 'handlers', hint: 'handlers is not absolute' },
      { key: 'jobs.work_dir', expected: EXPECTED.path, seen: 'work', hint: 'paths are not resolved against any working directory' },
      { key: 'jobs.path', expected: 'a colon-separated list of absolute directories', seen: '/usr/bin:bin', hint: '"bin" is not absolute' },
    ]);
  });

  it('requires pins to be base64 of 32 bytes', () => {
    const [problem] = problemsOf(`${BASE}pin_sha256 = ${'A'.repeat(43)}=, abc=\n`);
    expect(problem?.key).toBe('cloud.pin_sha256');
    expect(problem?.expected).toBe('comma-separated base64 SHA-256 digests (44 characters ending in =) of the server public key');
    expect(problem?.hint).toMatch(/^abc= is not 32 bytes of base64; make one with: openssl x509 /);
  });

  it('refuses api_key together with api_key_file, and client_cert without client_key', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cloudjobs-config-'));
    try {
      const keyFile = path.join(dir, 'api.key');
      const cert = path.join(dir, 'client.pem');
      fs.writeFileSync(keyFile, 'k\n', { mode: 0o600 });
      fs.writeFileSync(cert, 'cert\n');
      expect(problemsOf(`${BASE}api_key = s3cret-value\napi_key_file = ${keyFile}\nclient_cert = ${cert}\n`)).toEqual([
        {
          key: 'cloud.api_key',
          expected: 'either api_key or api_key_file, not both',
          seen: `api_key = [redacted] and api_key_file = ${keyFile}`,
          hint: 'remove one of them (cloud.api_key_file also sets the key)',
        },
        {
          key: 'cloud.client_key',
          expected: 'client_cert and client_key together',
          seen: 'client_cert set, client_key empty',
          hint: 'mutual TLS needs both; set client_key or remove client_cert',
        },
      ]);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('names files that do not exist', () => {
    expect(problemsOf(`${BASE}ca_file = /nonexistent/ca.pem\n`)).toEqual([
      {
        key: 'cloud.ca_file',
        expected: 'a readable PEM file of CA certificates',
        seen: '/nonexistent/ca.pem (ENOENT: no such file or directory)',
      },
    ]);
  });
});

describe('transport rule', () => {
  it('allows http:// to loopback hosts', () => {
    for (const url of ['http://127.0.0.1:4002/api/v1', 'http://localhost:4002', 'http://[::1]:4002/api']) {
      expect(load(`[cloud]\napi_url = ${url}\n`).config.cloud.api_url).toBe(url);
    }
  });

  it('refuses http:// to other hosts and explains why and what to do', () => {
    expect(problemsOf('[cloud]\napi_url = http://cloud-api:4002/api/v1\n')).toEqual([
      {
        key: 'cloud.api_url',
        expected: 'an https:// URL (http:// is allowed only to loopback hosts: 127.0.0.0/8, ::1, localhost)',
        seen: 'http://cloud-api:4002/api/v1',
        hint:
          'over http:// the API key and the jobs cross the network in clear text; use https://, ' +
          'or set allow_insecure_http = true in [cloud] if the network itself is trusted',
      },
    ]);
  });

  it('allows http:// anywhere with allow_insecure_http, and names the variable that set the URL', () => {
    expect(load('[cloud]\napi_url = http://cloud-api:4002/api/v1\nallow_insecure_http = true\n').config.cloud.api_url).toBe(
      'http://cloud-api:4002/api/v1',
    );
    expect(problemsOf('', { CLOUD_API_URL: 'http://10.0.0.5:4002/api/v1' })[0]?.key).toBe('CLOUD_API_URL');
  });
});

describe('environment', () => {
  it('applies precedence: defaults < file < seed variables < CLOUDJOBS_*', () => {
    const file = '[cloud]\napi_url = https://file.example.com\n[polling]\ninterval = 20s\n';
    expect(load(file).config.polling.interval).toBe(20_000);
    const seed = load(file, { CLOUD_API_URL: 'https://seed.example.com', CLOUD_JOBS_POLLING_INTERVAL: '15000' });
    expect(seed.config.cloud.api_url).toBe('https://seed.example.com');
    expect(seed.config.polling.interval).toBe(15_000);
    expect(seed.sources['polling.interval']).toBe('CLOUD_JOBS_POLLING_INTERVAL');
    const own = load(file, {
      CLOUD_API_URL: 'https://seed.example.com',
      CLOUD_JOBS_POLLING_INTERVAL: '15000',
      CLOUDJOBS_CLOUD_API_URL: 'https://own.example.com',
      CLOUDJOBS_POLLING_INTERVAL: '10s',
    });
    expect(own.config.cloud.api_url).toBe('https://own.example.com');
    expect(own.config.polling.interval).toBe(10_000);
    expect(own.sources['cloud.api_url']).toBe('CLOUDJOBS_CLOUD_API_URL');
    expect(own.sources['polling.interval']).toBe('CLOUDJOBS_POLLING_INTERVAL');
  });

  it('reads the seed guide variables exactly as it documents them', () => {
    const { config, sources } = load('', {
      CLOUD_API_URL: 'http://localhost:4002/api/v1',
      CLOUD_JOBS_POLLING_INTERVAL: '30000',
      DEBUG: 'true',
      DEVICE_API_KEY: 'seed-key',
      DEVICE_UUID: '8479359e-dbeb-4858-813c-e8a9008dde04',
      ENABLE_CLOUD_JOBS: 'true',
      ENABLE_JOB_ENGINE: 'true',
    });
    expect(config.cloud.api_url).toBe('http://localhost:4002/api/v1');
    expect(config.polling.interval).toBe(30_000);
    expect(config.logging.level).toBe('debug');
    expect(config.cloud.api_key).toBe('seed-key');
    expect(config.device.uuid).toBe('8479359e-dbeb-4858-813c-e8a9008dde04');
    expect(config.jobs.enabled).toBe(true);
    expect(sources['logging.level']).toBe('DEBUG');
    expect(sources['cloud.api_key']).toBe('DEVICE_API_KEY');
    expect(sources['jobs.enabled']).toBe('ENABLE_CLOUD_JOBS');
  });

  it('leaves the level alone with DEBUG=false and ignores a non-boolean DEBUG with a warning', () => {
    expect(load(`${BASE}[logging]\nlevel = warn\n`, { DEBUG: 'false' }).config.logging.level).toBe('warn');
    const other = load(BASE, { DEBUG: 'express:*' });
    expect(other.config.logging.level).toBe('info');
    expect(other.warnings).toEqual([
      'DEBUG=express:* is not true or false and is ignored; set DEBUG=true or [logging] level = debug for debug logging',
    ]);
  });

  it('takes the seed interval in plain milliseconds only, naming the variable', () => {
    expect(problemsOf(BASE, { CLOUD_JOBS_POLLING_INTERVAL: '30s' })).toEqual([
      {
        key: 'CLOUD_JOBS_POLLING_INTERVAL',
        expected: EXPECTED.milliseconds,
        seen: '30s',
        hint: 'this variable takes milliseconds without a unit, as the seed guide documents',
      },
    ]);
    expect(problemsOf(BASE, { CLOUD_JOBS_POLLING_INTERVAL: '50' })).toEqual([
      { key: 'CLOUD_JOBS_POLLING_INTERVAL', expected: 'a duration from 100ms to 1d', seen: '50ms' },
    ]);
  });

  it('names the CLOUDJOBS_ variable in its problems', () => {
    expect(problemsOf(BASE, { CLOUDJOBS_POLLING_INTERVAL: '30', CLOUDJOBS_JOBS_ENABLED: 'sure' })).toEqual([
      { key: 'CLOUDJOBS_POLLING_INTERVAL', expected: EXPECTED.duration, seen: '30', hint: 'durations need a unit: write 30s or 30ms' },
      { key: 'CLOUDJOBS_JOBS_ENABLED', expected: EXPECTED.bool, seen: 'sure' },
    ]);
  });

  it('rejects unknown CLOUDJOBS_<SECTION>_ variables with a suggestion, and warns about other CLOUDJOBS_ names', () => {
    expect(problemsOf(BASE, { CLOUDJOBS_POLLING_INTERVL: '5s' })).toEqual([
      {
        key: 'CLOUDJOBS_POLLING_INTERVL',
        expected: 'a CLOUDJOBS_<SECTION>_<KEY> variable naming a known key',
        seen: 'CLOUDJOBS_POLLING_INTERVL=5s',
        hint: 'did you mean CLOUDJOBS_POLLING_INTERVAL?',
      },
    ]);
    expect(load(BASE, { CLOUDJOBS_TEST_MODE: '1' }).warnings).toEqual([
      'CLOUDJOBS_TEST_MODE is not a configuration variable and is ignored',
    ]);
  });

  it('treats empty seed variables as unset but an empty CLOUDJOBS_ variable as an explicit value', () => {
    expect(load(BASE, { CLOUD_API_URL: '', DEBUG: '' }).config.cloud.api_url).toBe('https://cloud.example.com/api/v1');
    expect(problemsOf(BASE, { CLOUDJOBS_POLLING_INTERVAL: '' })).toEqual([
      { key: 'CLOUDJOBS_POLLING_INTERVAL', expected: EXPECTED.duration, seen: '(empty)' },
    ]);
  });
});

describe('jobs enabled and why not', () => {
  it('needs ENABLE_JOB_ENGINE=true when ENABLE_CLOUD_JOBS=true, as the seed does', () => {
    const loaded = load(BASE, { ENABLE_CLOUD_JOBS: 'true' });
    expect(loaded.config.jobs.enabled).toBe(false);
    expect(loaded.disabledReason).toBe('Job Engine not enabled: set ENABLE_JOB_ENGINE=true (cloud jobs depend on it)');
    expect(load(BASE, { ENABLE_CLOUD_JOBS: 'true', ENABLE_JOB_ENGINE: 'false' }).disabledReason).toBe(
      'Job Engine not enabled: set ENABLE_JOB_ENGINE=true (cloud jobs depend on it)',
    );
  });

  it('lets ENABLE_CLOUD_JOBS=false turn jobs off over the file', () => {
    const loaded = load(`${BASE}[jobs]\nenabled = true\n`, { ENABLE_CLOUD_JOBS: 'false', ENABLE_JOB_ENGINE: 'true' });
    expect(loaded.config.jobs.enabled).toBe(false);
    expect(loaded.disabledReason).toBe('cloud jobs disabled: ENABLE_CLOUD_JOBS is false');
  });

  it('lets ENABLE_CLOUD_JOBS=true turn jobs on over the file, with the engine enabled', () => {
    const loaded = load(`${BASE}[jobs]\nenabled = false\n`, { ENABLE_CLOUD_JOBS: 'yes', ENABLE_JOB_ENGINE: 'on' });
    expect(loaded.config.jobs.enabled).toBe(true);
    expect(loaded.disabledReason).toBeNull();
  });

  it('says where jobs.enabled = false came from', () => {
    expect(load(`${BASE}[jobs]\nenabled = false\n`).disabledReason).toBe(`jobs.enabled is false (set in ${FILE})`);
    expect(load(BASE, { ENABLE_CLOUD_JOBS: 'true', ENABLE_JOB_ENGINE: 'true', CLOUDJOBS_JOBS_ENABLED: 'off' }).disabledReason).toBe(
      'jobs.enabled is false (set by CLOUDJOBS_JOBS_ENABLED)',
    );
  });

  it('warns that ENABLE_JOB_ENGINE alone has no effect and rejects non-boolean seed switches', () => {
    const loaded = load(BASE, { ENABLE_JOB_ENGINE: 'false' });
    expect(loaded.config.jobs.enabled).toBe(true);
    expect(loaded.warnings).toEqual([
      'ENABLE_JOB_ENGINE is set but ENABLE_CLOUD_JOBS is not, so it has no effect; jobs.enabled decides whether jobs run',
    ]);
    expect(problemsOf(BASE, { ENABLE_CLOUD_JOBS: 'enabled' })).toEqual([
      { key: 'ENABLE_CLOUD_JOBS', expected: EXPECTED.bool, seen: 'enabled' },
    ]);
  });
});

describe('redaction', () => {
  const SECRET = 'Sup3rSecretKeyValue';

  it('never shows a secret value in problems or the message', () => {
    const error = errorOf(`${BASE}api_key = ${SECRET}\napi_key = ${SECRET}x\napikey = ${SECRET}\n[device]\nuuid = bad/uuid\n`, {
      CLOUDJOBS_CLOUD_API_KEYS: SECRET,
    });
    expect(error.problems.map((p) => p.key)).toEqual([
      'cloud.api_key',
      'cloud.apikey',
      'CLOUDJOBS_CLOUD_API_KEYS',
      'device.uuid',
    ]);
    expect(error.problems[0]?.seen).toBe('2 values');
    expect(error.problems[1]).toEqual({
      key: 'cloud.apikey',
      expected: 'a key of [cloud]: api_url, api_generation, api_key, api_key_file, request_timeout, allow_insecure_http, ca_file, pin_sha256, client_cert, client_key',
      seen: 'apikey = [redacted]',
      hint: 'did you mean api_key?',
    });
    expect(error.problems[2]?.seen).toBe('CLOUDJOBS_CLOUD_API_KEYS=[redacted]');
    expect(error.message).not.toContain(SECRET);
    expect(JSON.stringify(error.problems)).not.toContain(SECRET);
  });

  it('hides credentials written into a URL', () => {
    const error = errorOf(`[cloud]\napi_url = https://admin:${SECRET}@cloud.example.com\n`);
    expect(error.problems[0]?.seen).toBe('https://[redacted]@cloud.example.com');
    expect(error.message).not.toContain(SECRET);
  });

  it('hides the DEVICE_API_KEY in the both-set problem', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cloudjobs-config-'));
    try {
      const keyFile = path.join(dir, 'api.key');
      fs.writeFileSync(keyFile, 'k\n', { mode: 0o600 });
      const error = errorOf(`${BASE}api_key_file = ${keyFile}\n`, { DEVICE_API_KEY: SECRET });
      expect(error.problems[0]?.key).toBe('DEVICE_API_KEY');
      expect(error.message).not.toContain(SECRET);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('files on disk', () => {
  let dir: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cloudjobs-config-'));
  });
  afterEach(() => {
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('reads the file it is given and names it as the source', () => {
    const file = path.join(dir, 'agent.ini');
    fs.writeFileSync(file, `${BASE}[polling]\ninterval = 45s\n`, { mode: 0o644 });
    const loaded = loadConfig({ file, env: {} });
    expect(loaded.config.polling.interval).toBe(45_000);
    expect(loaded.sources['polling.interval']).toBe(file);
    expect(loaded.warnings).toEqual([]);
  });

  it('names the file and the OS reason when it cannot be read, and still reports other problems', () => {
    const missing = path.join(dir, 'nope.ini');
    try {
      loadConfig({ file: missing, env: { CLOUDJOBS_POLLING_INTERVAL: '5' } });
      throw new Error('expected a ConfigError');
    } catch (error) {
      expect((error as ConfigError).problems).toEqual([
        {
          key: missing,
          expected: 'a readable configuration file',
          seen: 'ENOENT: no such file or directory',
          hint: 'check the path given with --config',
        },
        { key: 'CLOUDJOBS_POLLING_INTERVAL', expected: EXPECTED.duration, seen: '5', hint: 'durations need a unit: write 5s or 5ms' },
        {
          key: 'cloud.api_url',
          expected: EXPECTED.url,
          seen: '(empty)',
          hint: `set api_url in [cloud] of ${missing}, or the environment variable CLOUDJOBS_CLOUD_API_URL or CLOUD_API_URL`,
        },
      ]);
    }
    try {
      loadConfig({ file: dir, env: {} });
      throw new Error('expected a ConfigError');
    } catch (error) {
      expect((error as ConfigError).problems[0]).toEqual({
        key: dir,
        expected: 'a readable configuration file',
        seen: 'EISDIR: illegal operation on a directory',
        hint: 'check the file and its permissions',
      });
    }
  });

  it('falls back to defaults and the environment when an optional file is missing, with a warning', () => {
    const missing = path.join(dir, 'agent.ini');
    const loaded = loadConfig({ file: missing, fileOptional: true, env: { CLOUD_API_URL: 'https://cloud.example.com' } });
    expect(loaded.config.cloud.api_url).toBe('https://cloud.example.com');
    expect(loaded.warnings).toEqual([`config file ${missing} does not exist; using defaults and environment variables`]);
  });

  it('warns when a config file holding api_key is readable by group or others', () => {
    const file = path.join(dir, 'agent.ini');
    fs.writeFileSync(file, `${BASE}api_key = abc\n`);
    fs.chmodSync(file, 0o644);
    expect(loadConfig({ file, env: {} }).warnings).toEqual([
      `${file} is readable by group and others (mode 0644); it holds secrets: chmod 600 ${file}`,
    ]);
    fs.chmodSync(file, 0o640);
    expect(loadConfig({ file, env: {} }).warnings).toEqual([
      `${file} is readable by group (mode 0640); it holds secrets: chmod 600 ${file}`,
    ]);
    fs.chmodSync(file, 0o600);
    expect(loadConfig({ file, env: {} }).warnings).toEqual([]);
  });

  it('does not warn about a world-readable config file without secrets', () => {
    const file = path.join(dir, 'agent.ini');
    fs.writeFileSync(file, BASE);
    fs.chmodSync(file, 0o644);
    expect(loadConfig({ file, env: {} }).warnings).toEqual([]);
  });

  it('warns about readable key files and a missing provisioning key file', () => {
    const keyFile = path.join(dir, 'api.key');
    const provisioning = path.join(dir, 'provisioning.key');
    fs.writeFileSync(keyFile, 'k\n');
    fs.writeFileSync(provisioning, 'p\n');
    fs.chmodSync(keyFile, 0o604);
    fs.chmodSync(provisioning, 0o600);
    const text = `${BASE}api_key_file = ${keyFile}\n[device]\nprovisioning_key_file = ${provisioning}\n`;
    expect(load(text).warnings).toEqual([
      `${keyFile} is readable by others (mode 0604); it holds secrets: chmod 600 ${keyFile}`,
    ]);
    fs.rmSync(provisioning);
    expect(load(text).warnings).toEqual([
      `${keyFile} is readable by others (mode 0604); it holds secrets: chmod 600 ${keyFile}`,
      `device.provisioning_key_file ${provisioning} cannot be read (ENOENT: no such file or directory); the agent cannot register itself without it`,
    ]);
  });

  it('rejects a missing api_key_file', () => {
    const keyFile = path.join(dir, 'missing.key');
    expect(problemsOf(`${BASE}api_key_file = ${keyFile}\n`)).toEqual([
      {
        key: 'cloud.api_key_file',
        expected: 'a readable file holding the device API key',
        seen: `${keyFile} (ENOENT: no such file or directory)`,
      },
    ]);
  });
});

describe('warnings', () => {
  it('warns below a 5s poll interval and names the source', () => {
    expect(load(`${BASE}[polling]\ninterval = 250ms\n`).warnings).toEqual([
      `polling.interval is 250ms (set in ${FILE}); values below 5s are meant for tests and demos: a fleet polling this often loads the cloud`,
    ]);
    expect(load(BASE, { CLOUD_JOBS_POLLING_INTERVAL: '1000' }).warnings).toEqual([
      'polling.interval is 1s (set by CLOUD_JOBS_POLLING_INTERVAL); values below 5s are meant for tests and demos: a fleet polling this often loads the cloud',
    ]);
    expect(load(`${BASE}[polling]\ninterval = 5s\n`).warnings).toEqual([]);
  });
});

describe('suggest', () => {
  it('finds close names and ignores distant ones', () => {
    expect(suggest('intervall', ['interval', 'jitter'])).toBe('interval');
    expect(suggest('Interval', ['interval', 'jitter'])).toBe('interval');
    expect(suggest('levl', ['level'])).toBe('level');
    expect(suggest('frobnicate', ['interval', 'jitter'])).toBeUndefined();
  });
});
