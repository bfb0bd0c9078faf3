// Parses the command line into one Command. Wrong input raises UsageError with
// a message naming the bad argument; the caller turns that into exit code 2.
// Values of secret options are never echoed back.
import { parseDuration } from '../config/parse-value.js';
import { UsageError } from '../errors/errors.js';
import { MAX_HOLD_REASON_CHARS } from '../state/hold-store.js';

/** Where the agent reads its configuration unless --config says otherwise. */
export const DEFAULT_CONFIG_FILE = '/etc/cloudjobs/agent.ini';

/** Entries `history` prints when --limit is not given. */
export const DEFAULT_HISTORY_LIMIT = 10;

/** Options every command has. */
export interface GlobalOptions {
  /** The config file: --config FILE, or DEFAULT_CONFIG_FILE. */
  configFile: string;
  /** True when --config was given (then a missing file is an error, not a fallback to defaults). */
  configGiven: boolean;
}

/** One parsed command line. */
export type Command = GlobalOptions &
  (
    | { name: 'run' }
    | { name: 'check-config' }
    | { name: 'status'; json: boolean }
    | { name: 'history'; limit: number; json: boolean }
    | {
        name: 'hold';
        /** --reason TEXT ('' when not given). */
        reason: string;
        /** --for DURATION in ms, or null. */
        forMs: number | null;
        /** --until TIME as written (parsed against the clock by the command), or null. */
        until: string | null;
      }
    | { name: 'release' }
    | { name: 'exec'; file: string }
    | { name: 'keygen'; out: string }
    | {
        name: 'sign';
        file: string;
        /** The Ed25519 private key (PEM). */
        key: string;
        /** --expires as given: a duration from now (7d) or an RFC 3339 time. */
        expires?: string;
        devices: string[];
        nonce: boolean;
      }
    | { name: 'verify'; file: string }
    | {
        name: 'register';
        /** A file holding the key, or "-" for standard input. */
        provisioningKeyFile?: string;
        deviceName?: string;
        deviceType?: string;
      }
    | { name: 'help' }
    | { name: 'version' }
  );

/** The commands, in the order help lists them. */
export const COMMANDS = ['run', 'check-config', 'status', 'history', 'hold', 'release', 'exec', 'register', 'keygen', 'sign', 'verify', 'help', 'version'] as const;

type CommandName = (typeof COMMANDS)[number];

interface OptionSpec {
  /** Takes a value (--limit N) rather than being a switch (--json). */
  value: boolean;
  /** Never echo its value. */
  secret?: boolean;
  /** May be given more than once (--device A --device B); the values are kept in order. */
  repeat?: boolean;
}

const OPTIONS: Readonly<Record<CommandName, Readonly<Record<string, OptionSpec>>>> = {
  run: {},
  'check-config': {},
  status: { '--json': { value: false } },
  history: { '--json': { value: false }, '--limit': { value: true } },
  hold: { '--reason': { value: true }, '--for': { value: true }, '--until': { value: true } },
  release: {},
  exec: {},
  register: {
    // known only to be refused with a pointer to the safe ways (buildRegister)
    '--provisioning-key': { value: true, secret: true },
    '--provisioning-key-file': { value: true },
    '--provisioning-key-stdin': { value: false },
    '--device-name': { value: true },
    '--device-type': { value: true },
  },
  keygen: { '--out': { value: true } },
  sign: { '--key': { value: true }, '--expires': { value: true }, '--device': { value: true, repeat: true }, '--nonce': { value: false } },
  verify: {},
  help: {},
  version: {},
};

const POSITIONALS: Readonly<Record<CommandName, readonly string[]>> = {
  run: [],
  'check-config': [],
  status: [],
  history: [],
  hold: [],
  release: [],
  exec: ['JOB.json'],
  register: [],
  keygen: [],
  sign: ['FILE'],
  verify: ['FILE'],
  help: [],
  version: [],
};

/** Parses the arguments after the program name into a Command; throws UsageError. */
export function parseArgs(argv: readonly string[]): Command {
  let configFile: string | undefined;
  let name: CommandName | undefined;
  const options = new Map<string, string | true>();
  const repeated = new Map<string, string[]>();
  const positionals: string[] = [];
  let wantsHelp = false;
  let wantsVersion = false;
  let endOfOptions = false;

  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    if (!endOfOptions && arg === '--') {
      endOfOptions = true;
      continue;
    }
    if (!endOfOptions && arg.startsWith('-') && arg !== '-') {
      const eq = arg.indexOf('=');
      const flag = eq > 0 ? arg.slice(0, eq) : arg;
      const inline = eq > 0 ? arg.slice(eq + 1) : undefined;
      if (flag === '--help' || flag === '-h') {
        wantsHelp = true;
        continue;
      }
      if (flag === '--version' || flag === '-V') {
        wantsVersion = true;
        continue;
      }
      const takeValue = (): string => {
        if (inline !== undefined) return inline;
        const next = argv[i + 1];
        if (next === undefined || (next.startsWith('-') && next !== '-')) {
          throw new UsageError(`${flag} needs a value`);
        }
        i++;
        return next;
      };
      if (flag === '--config' || flag === '-c') {
        if (configFile !== undefined) throw new UsageError('--config given twice');
        configFile = takeValue();
        if (configFile === '') throw new UsageError('--config needs a file name');
        continue;
      }
      const spec = name === undefined ? findOptionAnywhere(flag) : OPTIONS[name][flag];
      if (!spec) throw new UsageError(unknownOptionMessage(flag, name));
      if (options.has(flag) && !spec.repeat) throw new UsageError(`${flag} given twice`);
      if (!spec.value && inline !== undefined) throw new UsageError(`${flag} takes no value`);
      options.set(flag, spec.value ? takeValue() : true);
      if (spec.repeat) repeated.set(flag, [...(repeated.get(flag) ?? []), options.get(flag) as string]);
      continue;
    }
    if (name === undefined) {
      if (!(COMMANDS as readonly string[]).includes(arg)) {
        throw new UsageError(`unknown command ${JSON.stringify(arg)}; commands: ${COMMANDS.join(', ')} (see cloudjobs --help)`);
      }
      name = arg as CommandName;
      for (const flag of options.keys()) {
        if (!OPTIONS[name][flag]) throw new UsageError(unknownOptionMessage(flag, name));
      }
      continue;
    }
    positionals.push(arg);
  }

  const global: GlobalOptions = { configFile: configFile ?? DEFAULT_CONFIG_FILE, configGiven: configFile !== undefined };
  if (wantsHelp || name === 'help') return { ...global, name: 'help' };
  if (wantsVersion || name === 'version') return { ...global, name: 'version' };
  if (name === undefined) {
    throw new UsageError(`no command given; commands: ${COMMANDS.join(', ')} (see cloudjobs --help)`);
  }

  const expected = POSITIONALS[name];
  if (positionals.length > expected.length) {
    const surplus = positionals.slice(expected.length);
    // A stray word after register may be a provisioning key typed without its option.
    const extra = name === 'register' ? `${surplus.length} argument(s); give the key with --provisioning-key-file FILE or --provisioning-key-stdin`
      : surplus.map((p) => JSON.stringify(p)).join(' ');
    throw new UsageError(`${name} takes ${expected.length === 0 ? 'no arguments' : `only ${expected.join(' ')}`}; unexpected ${extra}`);
  }
  if (positionals.length < expected.length) {
    throw new UsageError(`${name} needs ${expected.slice(positionals.length).join(' ')}`);
  }

  const text = (flag: string): string | undefined => {
    const value = options.get(flag);
    return typeof value === 'string' ? value : undefined;
  };
  switch (name) {
    case 'run':
    case 'check-config':
    case 'release':
      return { ...global, name };
    case 'hold':
      return { ...global, name, ...parseHoldOptions(text) };
    case 'status':
      return { ...global, name, json: options.has('--json') };
    case 'history':
      return { ...global, name, json: options.has('--json'), limit: parseLimit(text('--limit')) };
    case 'exec':
      return { ...global, name, file: positionals[0] as string };
    case 'register':
      return buildRegister(global, text, options.has('--provisioning-key-stdin'));
    case 'keygen':
      return { ...global, name, out: requireText(text('--out'), '--out DIR', 'keygen') };
    case 'sign':
      return {
        ...global,
        name,
        file: positionals[0] as string,
        key: requireText(text('--key'), '--key PRIVATE.pem', 'sign'),
        ...(text('--expires') === undefined ? {} : { expires: text('--expires') as string }),
        devices: repeated.get('--device') ?? [],
        nonce: options.has('--nonce'),
      };
    case 'verify':
      return { ...global, name, file: positionals[0] as string };
  }
}

/** Why `--provisioning-key KEY` is refused, and what to use instead. */
export const PROVISIONING_KEY_OPTION_REFUSED =
  '--provisioning-key is no longer accepted: a key on the command line can be read by every local user (/proc/PID/cmdline) and stays in shell history; ' +
  'give it in a file with --provisioning-key-file FILE (mode 0600), or on standard input with --provisioning-key-stdin (or --provisioning-key-file -)';

function buildRegister(global: GlobalOptions, text: (flag: string) => string | undefined, fromStdin: boolean): Command {
  // the value is never looked at, let alone echoed
  if (text('--provisioning-key') !== undefined) throw new UsageError(PROVISIONING_KEY_OPTION_REFUSED);
  const keyFile = text('--provisioning-key-file');
  if (fromStdin && keyFile !== undefined) {
    throw new UsageError('give --provisioning-key-file or --provisioning-key-stdin, not both');
  }
  const command: Command = { ...global, name: 'register' };
  if (keyFile !== undefined) command.provisioningKeyFile = keyFile;
  if (fromStdin) command.provisioningKeyFile = '-';
  const deviceName = text('--device-name');
  if (deviceName !== undefined) command.deviceName = deviceName;
  const deviceType = text('--device-type');
  if (deviceType !== undefined) command.deviceType = deviceType;
  for (const [flag, value] of [['--provisioning-key-file', keyFile], ['--device-name', deviceName], ['--device-type', deviceType]] as const) {
    if (value !== undefined && value.trim() === '') throw new UsageError(`${flag} is empty`);
  }
  return command;
}

function requireText(value: string | undefined, option: string, command: string): string {
  if (value === undefined) throw new UsageError(`${command} needs ${option}`);
  if (value.trim() === '') throw new UsageError(`${option.split(' ')[0]} is empty`);
  return value;
}

function parseHoldOptions(text: (flag: string) => string | undefined): { reason: string; forMs: number | null; until: string | null } {
  const reason = text('--reason') ?? '';
  const forText = text('--for');
  const until = text('--until') ?? null;
  if (reason.length > MAX_HOLD_REASON_CHARS) throw new UsageError(`--reason is longer than ${MAX_HOLD_REASON_CHARS} characters`);
  if (forText !== undefined && until !== null) throw new UsageError('give --for DURATION or --until TIME, not both');
  if (forText === undefined) return { reason, forMs: null, until };
  const parsed = parseDuration(forText);
  if (!parsed.ok || parsed.value < 1000) {
    throw new UsageError(`--for must be a duration of at least 1s such as 30m, 2h or 1h30m, got ${JSON.stringify(forText)}`);
  }
  return { reason, forMs: parsed.value, until: null };
}

function parseLimit(text: string | undefined): number {
  if (text === undefined) return DEFAULT_HISTORY_LIMIT;
  const value = Number(text);
  if (!/^\d+$/.test(text) || !Number.isSafeInteger(value) || value < 1) {
    throw new UsageError(`--limit must be a positive whole number, got ${JSON.stringify(text)}`);
  }
  return value;
}

function findOptionAnywhere(flag: string): OptionSpec | undefined {
  for (const command of COMMANDS) {
    const spec = OPTIONS[command][flag];
    if (spec) return spec;
  }
  return undefined;
}

function unknownOptionMessage(flag: string, name: CommandName | undefined): string {
  const owners = COMMANDS.filter((command) => OPTIONS[command][flag] !== undefined);
  if (name !== undefined && owners.length > 0) {
    return `${flag} is not an option of ${name} (it belongs to ${owners.join(', ')})`;
  }
  if (name !== undefined) {
    const own = Object.keys(OPTIONS[name]);
    return `unknown option ${flag} for ${name}; ${name} takes ${own.length > 0 ? own.join(', ') : 'no options'} besides --config`;
  }
  return `unknown option ${flag} (see cloudjobs --help)`;
}
