// Loads the configuration once: defaults < agent.ini < the seed guide's
// variables < CLOUDJOBS_<SECTION>_<KEY>. Every problem is collected and thrown
// together as one ConfigError; the result is a deeply frozen Config.
import fs from 'node:fs';
import path from 'node:path';
import ini from 'ini';
import { ConfigError, type ConfigProblem } from '../errors/errors.js';
import { SCHEMA, envNameOf, type Config, type KeySpec } from './schema.js';
import { parseListenAddress } from './listen-address.js';
import { parseMaintenanceWindows, WINDOW_FORM } from './maintenance-windows.js';
import {
  EXPECTED,
  formatDuration,
  isLoopbackHost,
  parseBool,
  parseDuration,
  parseBrokerUrl,
  parseHttpUrl,
  parseInteger,
  parseList,
  parseMilliseconds,
  parsePercent,
  parseSize,
  type Parsed,
} from './parse-value.js';

/** What loadConfig reads. */
export interface LoadOptions {
  /** Path of agent.ini; named in messages and sources. */
  file: string;
  /** The file's text, when the caller already has it (then the file is not read or stat'ed). */
  fileText?: string;
  /** A missing file is not an error (the default path when --config was not given). */
  fileOptional?: boolean;
  /** The process environment (main.ts passes process.env). */
  env: Readonly<Record<string, string | undefined>>;
  /** Whether a missing cloud.api_url is an error; false for commands that never call the cloud. @default true */
  requireApiUrl?: boolean;
}

/** The loaded configuration and what the operator should know about it. */
export interface LoadedConfig {
  config: Config;
  /** Where each `section.key` came from: "default", the config file path, or an environment variable name. */
  sources: Readonly<Record<string, string>>;
  /** Things that work but deserve attention (insecure permissions, fast polling, ignored variables). */
  warnings: readonly string[];
  /** Why the agent will not take jobs, or null when jobs are enabled. */
  disabledReason: string | null;
}

/** Shown instead of a secret value in problems and output. */
export const REDACTED = '[redacted]';

/** The warning threshold of polling.interval: below it is for tests and demos. */
export const MIN_SENSIBLE_INTERVAL_MS = 5000;

/** Tells whether a key's value must never be shown: secret kinds, and values whose key names a key, secret, token or password. */
export function isSecretKey(spec: Pick<KeySpec, 'key'> & { kind?: string }): boolean {
  if (spec.kind === 'secret') return true;
  if (spec.kind === 'path' || /_file$/.test(spec.key)) return false;
  return /key|secret|token|passw/i.test(spec.key);
}

/** A raw value and where it came from. */
interface RawValue {
  text: string;
  /** 'default', 'file' or the environment variable name. */
  origin: string;
}

const SEED_ENV = {
  apiUrl: 'CLOUD_API_URL',
  interval: 'CLOUD_JOBS_POLLING_INTERVAL',
  debug: 'DEBUG',
  apiKey: 'DEVICE_API_KEY',
  uuid: 'DEVICE_UUID',
  cloudJobs: 'ENABLE_CLOUD_JOBS',
  jobEngine: 'ENABLE_JOB_ENGINE',
} as const;

// Names sent to the broker or put into topics: no spaces or control characters.
const MQTT_NAMES = new Set(['mqtt.username', 'mqtt.client_id', 'mqtt.tenant_id']);
const USER_NAME = /^[a-z_][a-z0-9_-]*\$?$/i;
const DEVICE_UUID = /^[A-Za-z0-9][A-Za-z0-9_-]*$/;

function idOf(spec: Pick<KeySpec, 'section' | 'key'>): string {
  return `${spec.section}.${spec.key}`;
}

/** Loads, validates and freezes the configuration; throws ConfigError listing every problem. */
export function loadConfig(options: LoadOptions): LoadedConfig {
  const { file, env } = options;
  const problems: ConfigProblem[] = [];
  const warnings: string[] = [];
  const raw = new Map<string, RawValue>();
  for (const spec of SCHEMA) raw.set(idOf(spec), { text: spec.default, origin: 'default' });

  const fileText = readConfigText(options, problems, warnings);
  if (fileText !== null) applyFile(fileText, raw, problems);
  const seed = applySeedEnv(env, raw, problems, warnings);
  applyOwnEnv(env, raw, problems, warnings);

  const values = new Map<string, unknown>();
  for (const spec of SCHEMA) {
    const value = raw.get(idOf(spec)) as RawValue;
    const parsed = parseKey(spec, value.text);
    if (parsed.ok) {
      values.set(idOf(spec), parsed.value);
    } else {
      problems.push(problemOf(spec, value, parsed.expected, parsed.hint));
    }
  }

  checkRequired(options, raw, problems);
  checkCombinations(raw, values, problems);
  checkFiles(raw, values, problems, warnings);
  if (fileText !== null && options.fileText === undefined) {
    const apiKey = raw.get('cloud.api_key');
    if (apiKey?.origin === 'file' && apiKey.text !== '') warnAboutMode(file, warnings);
  }
  const interval = values.get('polling.interval');
  if (typeof interval === 'number' && interval < MIN_SENSIBLE_INTERVAL_MS) {
    warnings.push(
      `polling.interval is ${formatDuration(interval)} (${describeOrigin(raw.get('polling.interval') as RawValue, file)}); ` +
        'values below 5s are meant for tests and demos: a fleet polling this often loads the cloud',
    );
  }

  if (problems.length > 0) throw new ConfigError(problems);

  const disabledReason = decideJobs(seed, raw, values, file);
  const sources: Record<string, string> = {};
  for (const [id, value] of raw) sources[id] = value.origin === 'file' ? file : value.origin;
  return deepFreeze({
    config: buildConfig(values),
    sources,
    warnings,
    disabledReason,
  });
}

function readConfigText(options: LoadOptions, problems: ConfigProblem[], warnings: string[]): string | null {
  if (options.fileText !== undefined) return options.fileText;
  try {
    return fs.readFileSync(options.file, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' && options.fileOptional === true) {
      warnings.push(`config file ${options.file} does not exist; using defaults and environment variables`);
      return null;
    }
    problems.push({
      key: options.file,
      expected: 'a readable configuration file',
      seen: osReason(error),
      hint: code === 'ENOENT' ? 'check the path given with --config' : 'check the file and its permissions',
    });
    return null;
  }
}

function applyFile(text: string, raw: Map<string, RawValue>, problems: ConfigProblem[]): void {
  // A byte-order mark from a Windows editor would otherwise hide the first [section].
  const parsed = ini.parse(text.replace(/^\uFEFF/, ''), { bracketedArray: false }) as Record<string, unknown>;
  const sections = [...new Set(SCHEMA.map((spec) => spec.section))];
  for (const [name, content] of Object.entries(parsed)) {
    if (!isPlainObject(content)) {
      const owner = SCHEMA.find((spec) => spec.key === name.toLowerCase());
      problems.push({
        key: name,
        expected: 'every key inside a [section]',
        seen: `${name} = ${showUnknown(name, content)} before any [section]`,
        ...(owner ? { hint: `did you mean to put it under [${owner.section}]?` } : {}),
      });
      continue;
    }
    if (!sections.includes(name)) {
      const guess = suggest(name, sections);
      problems.push({
        key: `[${name}]`,
        expected: `a known section: ${sections.map((s) => `[${s}]`).join(', ')}`,
        seen: `[${name}]`,
        ...(guess ? { hint: `did you mean [${guess}]?` } : {}),
      });
      continue;
    }
    for (const [key, value] of Object.entries(content)) {
      const id = `${name}.${key}`;
      if (isPlainObject(value)) {
        problems.push({
          key: `[${id}]`,
          expected: `a known section: ${sections.map((s) => `[${s}]`).join(', ')}`,
          seen: `[${id}]`,
          hint: 'sections do not nest',
        });
        continue;
      }
      const spec = SCHEMA.find((candidate) => candidate.section === name && candidate.key === key);
      if (!spec) {
        problems.push(unknownKeyProblem(name, key, value));
        continue;
      }
      const values = Array.isArray(value) ? value : [value];
      if (values.length > 1) {
        problems.push({
          key: id,
          expected: 'the key once',
          seen: isSecretKey(spec) ? `${values.length} values` : values.map(iniText).join(' and '),
          hint: 'remove all but one of the lines',
        });
        continue;
      }
      raw.set(id, { text: iniText(values[0]), origin: 'file' });
    }
  }
}

function unknownKeyProblem(section: string, key: string, value: unknown): ConfigProblem {
  const keys = SCHEMA.filter((spec) => spec.section === section).map((spec) => spec.key);
  const guess = suggest(key, keys);
  const elsewhere = SCHEMA.find((spec) => spec.key === key && spec.section !== section);
  const hint = guess
    ? `did you mean ${guess}?`
    : elsewhere
      ? `${key} belongs in [${elsewhere.section}]`
      : undefined;
  return {
    key: `${section}.${key}`,
    expected: `a key of [${section}]: ${keys.join(', ')}`,
    seen: `${key} = ${showUnknown(key, value)}`,
    ...(hint ? { hint } : {}),
  };
}

interface SeedState {
  cloudJobs: boolean | undefined;
  jobEngine: boolean | undefined;
}

function applySeedEnv(
  env: LoadOptions['env'],
  raw: Map<string, RawValue>,
  problems: ConfigProblem[],
  warnings: string[],
): SeedState {
  const get = (name: string): string | undefined => {
    const value = env[name];
    return value === undefined || value.trim() === '' ? undefined : value;
  };
  const url = get(SEED_ENV.apiUrl);
  if (url !== undefined) raw.set('cloud.api_url', { text: url, origin: SEED_ENV.apiUrl });

  const interval = get(SEED_ENV.interval);
  if (interval !== undefined) {
    const parsed = parseMilliseconds(interval);
    if (parsed.ok) {
      raw.set('polling.interval', { text: `${parsed.value}ms`, origin: SEED_ENV.interval });
    } else {
      problems.push({
        key: SEED_ENV.interval,
        expected: parsed.expected,
        seen: interval,
        ...(parsed.hint ? { hint: parsed.hint } : {}),
      });
    }
  }

  const debug = get(SEED_ENV.debug);
  if (debug !== undefined) {
    const parsed = parseBool(debug);
    if (!parsed.ok) {
      warnings.push(`DEBUG=${debug} is not true or false and is ignored; set DEBUG=true or [logging] level = debug for debug logging`);
    } else if (parsed.value) {
      raw.set('logging.level', { text: 'debug', origin: SEED_ENV.debug });
    }
  }

  const apiKey = get(SEED_ENV.apiKey);
  if (apiKey !== undefined) raw.set('cloud.api_key', { text: apiKey, origin: SEED_ENV.apiKey });
  const uuid = get(SEED_ENV.uuid);
  if (uuid !== undefined) raw.set('device.uuid', { text: uuid, origin: SEED_ENV.uuid });

  const seedBool = (name: string): boolean | undefined => {
    const text = get(name);
    if (text === undefined) return undefined;
    const parsed = parseBool(text);
    if (parsed.ok) return parsed.value;
    problems.push({ key: name, expected: EXPECTED.bool, seen: text });
    return undefined;
  };
  const state = { cloudJobs: seedBool(SEED_ENV.cloudJobs), jobEngine: seedBool(SEED_ENV.jobEngine) };
  if (state.cloudJobs !== undefined) {
    const enabled = state.cloudJobs && state.jobEngine === true;
    raw.set('jobs.enabled', { text: String(enabled), origin: SEED_ENV.cloudJobs });
  } else if (state.jobEngine !== undefined) {
    warnings.push(
      `${SEED_ENV.jobEngine} is set but ${SEED_ENV.cloudJobs} is not, so it has no effect; jobs.enabled decides whether jobs run`,
    );
  }
  return state;
}

function applyOwnEnv(
  env: LoadOptions['env'],
  raw: Map<string, RawValue>,
  problems: ConfigProblem[],
  warnings: string[],
): void {
  const byName = new Map(SCHEMA.map((spec) => [envNameOf(spec), spec] as const));
  const sections = [...new Set(SCHEMA.map((spec) => spec.section.toUpperCase()))];
  for (const [name, value] of Object.entries(env)) {
    if (!name.startsWith('CLOUDJOBS_') || value === undefined) continue;
    // Read by `run` itself (tests play waits faster), not a configuration key.
    if (name === 'CLOUDJOBS_TEST_TIME_SCALE') continue;
    const spec = byName.get(name);
    if (spec) {
      raw.set(idOf(spec), { text: value, origin: name });
      continue;
    }
    const guess = suggest(name, [...byName.keys()]);
    const rest = name.slice('CLOUDJOBS_'.length);
    if (sections.some((section) => rest.startsWith(`${section}_`))) {
      problems.push({
        key: name,
        expected: 'a CLOUDJOBS_<SECTION>_<KEY> variable naming a known key',
        seen: `${name}=${isSecretKey({ key: name }) ? REDACTED : value}`,
        ...(guess ? { hint: `did you mean ${guess}?` } : {}),
      });
    } else {
      warnings.push(`${name} is not a configuration variable and is ignored${guess ? ` (did you mean ${guess}?)` : ''}`);
    }
  }
}

function parseKey(spec: KeySpec, text: string): Parsed<unknown> {
  const parsed = parseKind(spec, text);
  if (!parsed.ok || typeof parsed.value !== 'number' || spec.kind === 'bool') return parsed;
  const value = parsed.value;
  const tooLow = spec.min !== undefined && value < spec.min;
  const tooHigh = spec.max !== undefined && value > spec.max;
  if (!tooLow && !tooHigh) {
    return spec.kind === 'percent' ? { ok: true, value: value / 100 } : parsed;
  }
  const show = (n: number): string =>
    spec.kind === 'duration' ? formatDuration(n) : spec.kind === 'size' ? `${n}B` : spec.kind === 'percent' ? `${n}%` : String(n);
  const noun = { duration: 'a duration', size: 'a size', percent: 'a percentage', int: 'a whole number' }[
    spec.kind as 'duration' | 'size' | 'percent' | 'int'
  ];
  if (spec.min !== undefined && spec.max !== undefined) {
    return { ok: false, expected: `${noun} from ${show(spec.min)} to ${show(spec.max)}` };
  }
  return tooLow
    ? { ok: false, expected: `${noun} of at least ${show(spec.min as number)}` }
    : { ok: false, expected: `${noun} of at most ${show(spec.max as number)}` };
}

function parseKind(spec: KeySpec, text: string): Parsed<unknown> {
  switch (spec.kind) {
    case 'duration':
      // a duration whose default is empty is optional (mqtt.poll_interval_when_connected)
      if (spec.default === '' && text.trim() === '') return { ok: true, value: null };
      return parseDuration(text);
    case 'size':
      return parseSize(text);
    case 'percent':
      return parsePercent(text);
    case 'int':
      return parseInteger(text);
    case 'bool':
      return parseBool(text);
    case 'enum':
    case 'level': {
      const value = text.trim().toLowerCase();
      const values = spec.values ?? [];
      return values.includes(value) ? { ok: true, value } : { ok: false, expected: `one of ${values.join(', ')}` };
    }
    case 'url': {
      if (text.trim() === '') return { ok: true, value: '' };
      return parseHttpUrl(text);
    }
    case 'path': {
      const value = text.trim();
      if (value === '' || path.isAbsolute(value)) return { ok: true, value };
      return { ok: false, expected: EXPECTED.path, hint: 'paths are not resolved against any working directory' };
    }
    case 'list':
      return parseListKey(spec, text);
    case 'secret':
      return { ok: true, value: text.trim() };
    case 'string':
      return parseStringKey(spec, text.trim());
  }
}

function parseListKey(spec: KeySpec, text: string): Parsed<unknown> {
  const entries = parseList(text);
  const id = idOf(spec);
  if (id === 'cloud.pin_sha256' || id === 'mqtt.pin_sha256') {
    const pins = entries.map((entry) => entry.replace(/^sha256\/\//, ''));
    const bad = pins.find((pin) => !/^[A-Za-z0-9+/]{43}=$/.test(pin) || Buffer.from(pin, 'base64').length !== 32);
    if (bad !== undefined) {
      return {
        ok: false,
        expected: 'comma-separated base64 SHA-256 digests (44 characters ending in =) of the server public key',
        hint: `${bad} is not 32 bytes of base64; make one with: openssl x509 -in cert.pem -pubkey -noout | openssl pkey -pubin -outform der | openssl dgst -sha256 -binary | base64`,
      };
    }
    return { ok: true, value: pins };
  }
  if (id === 'jobs.allowed_users') {
    const bad = entries.find((entry) => !USER_NAME.test(entry));
    if (bad !== undefined) return { ok: false, expected: 'comma-separated user names', hint: `${bad} is not a user name` };
  }
  if (id === 'jobs.maintenance_windows') {
    const windows = parseMaintenanceWindows(entries);
    if (!windows.ok) return { ok: false, expected: WINDOW_FORM, hint: `"${windows.entry}" is ${windows.problem}` };
  }
  if (id === 'jobs.handler_dirs') {
    const bad = entries.find((entry) => !path.isAbsolute(entry));
    if (bad !== undefined) return { ok: false, expected: 'comma-separated absolute paths', hint: `${bad} is not absolute` };
  }
  return { ok: true, value: entries };
}

function parseStringKey(spec: KeySpec, value: string): Parsed<unknown> {
  const id = idOf(spec);
  if (id === 'jobs.run_as_user' && !USER_NAME.test(value)) {
    return { ok: false, expected: 'a user name such as cloudjobs' };
  }
  if (id === 'device.uuid' && value !== '' && !DEVICE_UUID.test(value)) {
    return { ok: false, expected: 'a device uuid made of letters, digits, - and _', hint: 'it becomes part of every request path' };
  }
  if (id === 'mqtt.broker') return parseBrokerUrl(value);
  if (id === 'metrics.listen') {
    const address = parseListenAddress(value);
    return address.ok ? { ok: true, value } : address;
  }

  if (MQTT_NAMES.has(id) && !/^[\x21-\x7e]{0,200}$/.test(value)) {
    return { ok: false, expected: 'up to 200 printable ASCII characters without spaces' };
  }
  if (id === 'jobs.path') {
    const bad = value.split(':').find((entry) => !path.isAbsolute(entry));
    if (bad !== undefined) {
      return { ok: false, expected: 'a colon-separated list of absolute directories', hint: `"${bad}" is not absolute` };
    }
  }
  return { ok: true, value };
}

function checkRequired(options: LoadOptions, raw: Map<string, RawValue>, problems: ConfigProblem[]): void {
  if (options.requireApiUrl === false) return;
  for (const spec of SCHEMA) {
    if (!spec.required) continue;
    const value = raw.get(idOf(spec)) as RawValue;
    if (value.text.trim() !== '') continue;
    const seedName = idOf(spec) === 'cloud.api_url' ? ` or ${SEED_ENV.apiUrl}` : '';
    problems.push({
      key: value.origin === 'default' || value.origin === 'file' ? idOf(spec) : value.origin,
      expected: spec.kind === 'url' ? EXPECTED.url : 'a value',
      seen: '(empty)',
      hint: `set ${spec.key} in [${spec.section}] of ${options.file}, or the environment variable ${envNameOf(spec)}${seedName}`,
    });
  }
}

function checkCombinations(raw: Map<string, RawValue>, values: Map<string, unknown>, problems: ConfigProblem[]): void {
  const apiUrl = values.get('cloud.api_url');
  const insecure = values.get('cloud.allow_insecure_http');
  if (typeof apiUrl === 'string' && apiUrl.startsWith('http://') && insecure === false) {
    const host = new URL(apiUrl).hostname;
    if (!isLoopbackHost(host)) {
      problems.push({
        key: keyOf('cloud.api_url', raw),
        expected: 'an https:// URL (http:// is allowed only to loopback hosts: 127.0.0.0/8, ::1, localhost)',
        seen: apiUrl,
        hint:
          'over http:// the API key and the jobs cross the network in clear text; use https://, ' +
          'or set allow_insecure_http = true in [cloud] if the network itself is trusted',
      });
    }
  }
  const apiKey = values.get('cloud.api_key');
  const apiKeyFile = values.get('cloud.api_key_file');
  if (typeof apiKey === 'string' && apiKey !== '' && typeof apiKeyFile === 'string' && apiKeyFile !== '') {
    problems.push({
      key: keyOf('cloud.api_key', raw),
      expected: 'either api_key or api_key_file, not both',
      seen: `api_key = ${REDACTED} and api_key_file = ${apiKeyFile}`,
      hint: `remove one of them (${keyOf('cloud.api_key_file', raw)} also sets the key)`,
    });
  }
  checkBroker(raw, values, problems);
  checkMetrics(raw, values, problems);
  const cert = values.get('cloud.client_cert');
  const key = values.get('cloud.client_key');
  if (typeof cert === 'string' && typeof key === 'string' && (cert === '') !== (key === '')) {
    const [given, missing] = cert === '' ? ['client_key', 'client_cert'] : ['client_cert', 'client_key'];
    problems.push({
      key: keyOf(`cloud.${missing}`, raw),
      expected: 'client_cert and client_key together',
      seen: `${given} set, ${missing} empty`,
      hint: `mutual TLS needs both; set ${missing} or remove ${given}`,
    });
  }
}

// A textfile node_exporter would not read is a mistake; a metrics endpoint off loopback shows the device's job counts to its whole network: only when asked for.
function checkMetrics(raw: Map<string, RawValue>, values: Map<string, unknown>, problems: ConfigProblem[]): void {
  const textfile = values.get('metrics.textfile');
  if (typeof textfile === 'string' && textfile !== '' && !/[^/]\.prom$/.test(textfile)) {
    problems.push({
      key: keyOf('metrics.textfile', raw),
      expected: 'a path ending in .prom (node_exporter\'s textfile collector reads only *.prom)',
      seen: textfile,
      hint: 'e.g. /var/lib/prometheus/node-exporter/cloudjobs.prom',
    });
  }
  const listen = values.get('metrics.listen');
  if (typeof listen !== 'string' || listen === '' || values.get('metrics.allow_remote') !== false) return;
  const address = parseListenAddress(listen);
  if (!address.ok || address.value === null || isLoopbackHost(address.value.host)) return;
  problems.push({
    key: keyOf('metrics.listen', raw),
    expected: 'a loopback address such as 127.0.0.1:9464 or [::1]:9464',
    seen: listen,
    hint: 'anyone who reaches the port reads the metrics; set allow_remote = true in [metrics] to listen on another address',
  });
}

function checkBroker(raw: Map<string, RawValue>, values: Map<string, unknown>, problems: ConfigProblem[]): void {
  const broker = values.get('mqtt.broker');
  if (typeof broker === 'string' && broker.startsWith('mqtt://') && values.get('mqtt.allow_insecure') === false) {
    if (!isLoopbackHost(new URL(broker).hostname)) {
      problems.push({
        key: keyOf('mqtt.broker', raw),
        expected: 'an mqtts:// URL (mqtt:// is allowed only to loopback hosts: 127.0.0.0/8, ::1, localhost)',
        seen: broker,
        hint: 'over mqtt:// the broker password crosses the network in clear text; use mqtts://, or set allow_insecure = true in [mqtt] if the network itself is trusted',
      });
    }
  }
  const cert = values.get('mqtt.client_cert');
  const key = values.get('mqtt.client_key');
  if (typeof cert === 'string' && typeof key === 'string' && (cert === '') !== (key === '')) {
    const [given, missing] = cert === '' ? ['client_key', 'client_cert'] : ['client_cert', 'client_key'];
    problems.push({
      key: keyOf(`mqtt.${missing}`, raw),
      expected: 'client_cert and client_key together',
      seen: `${given} set, ${missing} empty`,
      hint: `mutual TLS with the broker needs both; set ${missing} in [mqtt] or remove ${given}`,
    });
  }
}

function checkFiles(
  raw: Map<string, RawValue>,
  values: Map<string, unknown>,
  problems: ConfigProblem[],
  warnings: string[],
): void {
  const checks: ReadonlyArray<{ id: string; secret: boolean; what: string; optional: boolean }> = [
    { id: 'cloud.api_key_file', secret: true, what: 'a readable file holding the device API key', optional: false },
    { id: 'cloud.ca_file', secret: false, what: 'a readable PEM file of CA certificates', optional: false },
    { id: 'cloud.client_cert', secret: false, what: 'a readable PEM client certificate', optional: false },
    { id: 'cloud.client_key', secret: true, what: 'a readable PEM private key', optional: false },
    { id: 'mqtt.password_file', secret: true, what: 'a readable file holding the broker password', optional: false },
    { id: 'mqtt.ca_file', secret: false, what: 'a readable PEM file of CA certificates', optional: false },
    { id: 'mqtt.client_cert', secret: false, what: 'a readable PEM client certificate', optional: false },
    { id: 'mqtt.client_key', secret: true, what: 'a readable PEM private key', optional: false },
    { id: 'device.provisioning_key_file', secret: true, what: 'a readable file holding the provisioning key', optional: true },
  ];
  for (const check of checks) {
    const file = values.get(check.id);
    if (typeof file !== 'string' || file === '') continue;
    let reason: string | null = null;
    try {
      if (!fs.statSync(file).isFile()) reason = 'not a regular file';
      else fs.accessSync(file, fs.constants.R_OK);
    } catch (error) {
      reason = osReason(error);
    }
    if (reason === null) {
      if (check.secret) warnAboutMode(file, warnings);
    } else if (check.optional) {
      warnings.push(`${check.id} ${file} cannot be read (${reason}); the agent cannot register itself without it`);
    } else {
      problems.push({ key: keyOf(check.id, raw), expected: check.what, seen: `${file} (${reason})` });
    }
  }
}

function warnAboutMode(file: string, warnings: string[]): void {
  let mode: number;
  try {
    mode = fs.statSync(file).mode & 0o777;
  } catch {
    return;
  }
  const who = [mode & 0o040 ? 'group' : '', mode & 0o004 ? 'others' : ''].filter(Boolean).join(' and ');
  if (who === '') return;
  warnings.push(
    `${file} is readable by ${who} (mode ${mode.toString(8).padStart(4, '0')}); it holds secrets: chmod 600 ${file}`,
  );
}

function decideJobs(seed: SeedState, raw: Map<string, RawValue>, values: Map<string, unknown>, file: string): string | null {
  if (values.get('jobs.enabled') === true) return null;
  const origin = (raw.get('jobs.enabled') as RawValue).origin;
  if (origin === SEED_ENV.cloudJobs) {
    if (seed.cloudJobs === false) return `cloud jobs disabled: ${SEED_ENV.cloudJobs} is false`;
    return `Job Engine not enabled: set ${SEED_ENV.jobEngine}=true (cloud jobs depend on it)`;
  }
  return `jobs.enabled is false (${describeOrigin(raw.get('jobs.enabled') as RawValue, file)})`;
}

// Values are parsed per kind (parseKind); Config derives from the same schema
// entries, and test/unit/config/schema.test.ts checks the two agree.
function buildConfig(values: Map<string, unknown>): Config {
  const config: Record<string, Record<string, unknown>> = {};
  for (const spec of SCHEMA) {
    config[spec.section] ??= {};
    (config[spec.section] as Record<string, unknown>)[spec.key] = values.get(idOf(spec));
  }
  return config as unknown as Config;
}

function problemOf(spec: KeySpec, value: RawValue, expected: string, hint?: string): ConfigProblem {
  const seen = isSecretKey(spec)
    ? REDACTED
    : value.text.trim() === ''
      ? '(empty)'
      : value.text.replace(/\/\/[^/@]*@/, `//${REDACTED}@`);
  const key = value.origin === 'default' || value.origin === 'file' ? idOf(spec) : value.origin;
  return hint === undefined ? { key, expected, seen } : { key, expected, seen, hint };
}

function keyOf(id: string, raw: Map<string, RawValue>): string {
  const origin = raw.get(id)?.origin;
  return origin === undefined || origin === 'default' || origin === 'file' ? id : origin;
}

function describeOrigin(value: RawValue, file: string): string {
  if (value.origin === 'default') return 'the default';
  if (value.origin === 'file') return `set in ${file}`;
  return `set by ${value.origin}`;
}

function showUnknown(name: string, value: unknown): string {
  if (isSecretKey({ key: name })) return REDACTED;
  return Array.isArray(value) ? value.map(iniText).join(', ') : iniText(value);
}

function iniText(value: unknown): string {
  return typeof value === 'string' ? value : String(value);
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function osReason(error: unknown): string {
  const err = error as NodeJS.ErrnoException;
  const text = /^[A-Z]+: ([^,]+)/.exec(err.message ?? '')?.[1];
  return err.code && text ? `${err.code}: ${text}` : String(err.message ?? error);
}

/** Returns the candidate closest to `name` when it is near enough to be a likely typo. */
export function suggest(name: string, candidates: readonly string[]): string | undefined {
  const wanted = name.toLowerCase();
  let best: string | undefined;
  let bestDistance = Math.max(1, Math.floor(wanted.length / 3)) + 1;
  for (const candidate of candidates) {
    const distance = editDistance(wanted, candidate.toLowerCase());
    if (distance < bestDistance) {
      best = candidate;
      bestDistance = distance;
    }
  }
  return best;
}

function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      current[j] = Math.min((previous[j] ?? 0) + 1, (current[j - 1] ?? 0) + 1, (previous[j - 1] ?? 0) + cost);
    }
    previous = current;
  }
  return previous[b.length] ?? 0;
}

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const inner of Object.values(value)) deepFreeze(inner);
  }
  return value;
}
