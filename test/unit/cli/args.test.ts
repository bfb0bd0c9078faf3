import { describe, expect, it } from 'vitest';
import { COMMANDS, DEFAULT_CONFIG_FILE, parseArgs, PROVISIONING_KEY_OPTION_REFUSED } from '../../../src/cli/args.js';
import { HELP_TEXT } from '../../../src/cli/help.js';
import { UsageError } from '../../../src/errors/errors.js';

const DEFAULTS = { configFile: DEFAULT_CONFIG_FILE, configGiven: false };

function usageErrorOf(argv: string[]): string {
  try {
    parseArgs(argv);
  } catch (error) {
    expect(error).toBeInstanceOf(UsageError);
    expect((error as UsageError).code).toBe('USAGE');
    return (error as UsageError).message;
  }
  throw new Error(`expected a UsageError for ${JSON.stringify(argv)}`);
}

describe('parseArgs: commands', () => {
  it('parses each command with its defaults', () => {
    expect(parseArgs(['run'])).toEqual({ ...DEFAULTS, name: 'run' });
    expect(parseArgs(['check-config'])).toEqual({ ...DEFAULTS, name: 'check-config' });
    expect(parseArgs(['status'])).toEqual({ ...DEFAULTS, name: 'status', json: false });
    expect(parseArgs(['history'])).toEqual({ ...DEFAULTS, name: 'history', limit: 10, json: false });
    expect(parseArgs(['exec', 'job.json'])).toEqual({ ...DEFAULTS, name: 'exec', file: 'job.json' });
    expect(parseArgs(['register'])).toEqual({ ...DEFAULTS, name: 'register' });
    expect(parseArgs(['help'])).toEqual({ ...DEFAULTS, name: 'help' });
    expect(parseArgs(['version'])).toEqual({ ...DEFAULTS, name: 'version' });
  });

  it('parses command options in both spellings', () => {
    expect(parseArgs(['status', '--json'])).toEqual({ ...DEFAULTS, name: 'status', json: true });
    expect(parseArgs(['history', '--limit', '5', '--json'])).toEqual({ ...DEFAULTS, name: 'history', limit: 5, json: true });
    expect(parseArgs(['history', '--limit=25'])).toEqual({ ...DEFAULTS, name: 'history', limit: 25, json: false });
    expect(parseArgs(['register', '--provisioning-key-stdin', '--device-name', 'pi-01', '--device-type=Raspberry Pi 4'])).toEqual({
      ...DEFAULTS,
      name: 'register',
      provisioningKeyFile: '-',
      deviceName: 'pi-01',
      deviceType: 'Raspberry Pi 4',
    });
    expect(parseArgs(['register', '--provisioning-key-file', '/root/pk'])).toEqual({
      ...DEFAULTS,
      name: 'register',
      provisioningKeyFile: '/root/pk',
    });
  });

  it('accepts --config before or after the command, and -c', () => {
    const expected = { configFile: '/tmp/a.ini', configGiven: true, name: 'run' };
    expect(parseArgs(['--config', '/tmp/a.ini', 'run'])).toEqual(expected);
    expect(parseArgs(['run', '--config', '/tmp/a.ini'])).toEqual(expected);
    expect(parseArgs(['run', '--config=/tmp/a.ini'])).toEqual(expected);
    expect(parseArgs(['-c', '/tmp/a.ini', 'run'])).toEqual(expected);
    expect(parseArgs(['--config', '/tmp/a.ini', 'exec', 'job.json'])).toEqual({ ...expected, name: 'exec', file: 'job.json' });
  });

  it('accepts command options before the command name', () => {
    expect(parseArgs(['--json', 'status'])).toEqual({ ...DEFAULTS, name: 'status', json: true });
  });

  it('takes a job file that starts with a dash after --', () => {
    expect(parseArgs(['exec', '--', '-job.json'])).toEqual({ ...DEFAULTS, name: 'exec', file: '-job.json' });
  });

  it('turns --help and --version anywhere into those commands', () => {
    expect(parseArgs(['--help'])).toEqual({ ...DEFAULTS, name: 'help' });
    expect(parseArgs(['-h'])).toEqual({ ...DEFAULTS, name: 'help' });
    expect(parseArgs(['history', '--help'])).toEqual({ ...DEFAULTS, name: 'help' });
    expect(parseArgs(['--version'])).toEqual({ ...DEFAULTS, name: 'version' });
    expect(parseArgs(['-V'])).toEqual({ ...DEFAULTS, name: 'version' });
  });
});

describe('parseArgs: usage errors', () => {
  it('refuses no command and an unknown command', () => {
    expect(usageErrorOf([])).toBe(
      'no command given; commands: run, check-config, status, history, hold, release, exec, register, keygen, sign, verify, help, version (see cloudjobs --help)',
    );
    expect(usageErrorOf(['start'])).toBe(
      'unknown command "start"; commands: run, check-config, status, history, hold, release, exec, register, keygen, sign, verify, help, version (see cloudjobs --help)',
    );
  });

  it('refuses unknown options and options of another command', () => {
    expect(usageErrorOf(['run', '--verbose'])).toBe('unknown option --verbose for run; run takes no options besides --config');
    expect(usageErrorOf(['history', '--all'])).toBe('unknown option --all for history; history takes --json, --limit besides --config');
    expect(usageErrorOf(['run', '--json'])).toBe('--json is not an option of run (it belongs to status, history)');
    expect(usageErrorOf(['--limit', '3', 'status'])).toBe('--limit is not an option of status (it belongs to history)');
    expect(usageErrorOf(['--bogus', 'run'])).toBe('unknown option --bogus (see cloudjobs --help)');
  });

  it('refuses missing values, values on switches and repeated options', () => {
    expect(usageErrorOf(['run', '--config'])).toBe('--config needs a value');
    expect(usageErrorOf(['--config', '--json', 'status'])).toBe('--config needs a value');
    expect(usageErrorOf(['run', '--config='])).toBe('--config needs a file name');
    expect(usageErrorOf(['-c', 'a', 'run', '-c', 'b'])).toBe('--config given twice');
    expect(usageErrorOf(['history', '--limit'])).toBe('--limit needs a value');
    expect(usageErrorOf(['status', '--json=yes'])).toBe('--json takes no value');
    expect(usageErrorOf(['status', '--json', '--json'])).toBe('--json given twice');
  });

  it('requires --limit to be a positive whole number', () => {
    expect(usageErrorOf(['history', '--limit', '0'])).toBe('--limit must be a positive whole number, got "0"');
    expect(usageErrorOf(['history', '--limit=-3'])).toBe('--limit must be a positive whole number, got "-3"');
    expect(usageErrorOf(['history', '--limit', '2.5'])).toBe('--limit must be a positive whole number, got "2.5"');
    expect(usageErrorOf(['history', '--limit', 'ten'])).toBe('--limit must be a positive whole number, got "ten"');
    expect(usageErrorOf(['history', '--limit', '99999999999999999999'])).toBe(
      '--limit must be a positive whole number, got "99999999999999999999"',
    );
  });

  it('checks positional arguments', () => {
    expect(usageErrorOf(['exec'])).toBe('exec needs JOB.json');
    expect(usageErrorOf(['exec', 'a.json', 'b.json'])).toBe('exec takes only JOB.json; unexpected "b.json"');
    expect(usageErrorOf(['run', 'now'])).toBe('run takes no arguments; unexpected "now"');
  });

  it('refuses a key on the command line, saying what to use instead (issue 16 item 6)', () => {
    expect(PROVISIONING_KEY_OPTION_REFUSED).toBe(
      '--provisioning-key is no longer accepted: a key on the command line can be read by every local user (/proc/PID/cmdline) and stays in shell history; ' +
        'give it in a file with --provisioning-key-file FILE (mode 0600), or on standard input with --provisioning-key-stdin (or --provisioning-key-file -)',
    );
    expect(usageErrorOf(['register', '--provisioning-key', 'pk'])).toBe(PROVISIONING_KEY_OPTION_REFUSED);
    expect(usageErrorOf(['register', '--provisioning-key='])).toBe(PROVISIONING_KEY_OPTION_REFUSED);
    expect(usageErrorOf(['register', '--provisioning-key=pk', '--provisioning-key-file', '/f'])).toBe(PROVISIONING_KEY_OPTION_REFUSED);
  });

  it('reads the key from standard input with --provisioning-key-stdin or --provisioning-key-file -, not both', () => {
    expect(parseArgs(['register', '--provisioning-key-file', '-'])).toEqual({ ...DEFAULTS, name: 'register', provisioningKeyFile: '-' });
    expect(usageErrorOf(['register', '--provisioning-key-stdin', '--provisioning-key-file', '/f'])).toBe(
      'give --provisioning-key-file or --provisioning-key-stdin, not both',
    );
  });

  it('refuses empty values', () => {
    expect(usageErrorOf(['register', '--device-name='])).toBe('--device-name is empty');
  });

  it('never echoes a provisioning key', () => {
    const key = 'pk-Sup3rSecret';
    const messages = [
      usageErrorOf(['register', key]),
      usageErrorOf(['register', `--provisioning-key=${key}`, '--provisioning-key-file', '/f']),
      usageErrorOf(['register', `--provisioning-key=${key}`, `--provisioning-key=${key}`]),
      usageErrorOf(['run', `--provisioning-key=${key}`]),
      usageErrorOf(['register', '--provisioning-key', key, '--bogus']),
    ];
    expect(messages[0]).toBe(
      'register takes no arguments; unexpected 1 argument(s); give the key with --provisioning-key-file FILE or --provisioning-key-stdin',
    );
    for (const message of messages) expect(message).not.toContain(key);
  });
});

describe('hold and release', () => {
  it('parses the reason and one end', () => {
    expect(parseArgs(['hold'])).toEqual({ ...DEFAULTS, name: 'hold', reason: '', forMs: null, until: null });
    expect(parseArgs(['hold', '--reason', 'kiosk in use', '--for', '1h30m'])).toEqual({ ...DEFAULTS, name: 'hold', reason: 'kiosk in use', forMs: 5_400_000, until: null });
    expect(parseArgs(['hold', '--until=18:00'])).toEqual({ ...DEFAULTS, name: 'hold', reason: '', forMs: null, until: '18:00' });
    expect(parseArgs(['release'])).toEqual({ ...DEFAULTS, name: 'release' });
  });

  it('refuses both ends, a bad duration, a long reason and arguments', () => {
    expect(usageErrorOf(['hold', '--for', '1h', '--until', '18:00'])).toBe('give --for DURATION or --until TIME, not both');
    expect(usageErrorOf(['hold', '--for', '90'])).toBe('--for must be a duration of at least 1s such as 30m, 2h or 1h30m, got "90"');
    expect(usageErrorOf(['hold', '--for', '500ms'])).toMatch(/^--for must be a duration of at least 1s/);
    expect(usageErrorOf(['hold', '--reason', 'x'.repeat(201)])).toBe('--reason is longer than 200 characters');
    expect(usageErrorOf(['release', 'now'])).toBe('release takes no arguments; unexpected "now"');
    expect(usageErrorOf(['release', '--reason', 'x'])).toBe('--reason is not an option of release (it belongs to hold)');
  });
});

describe('HELP_TEXT', () => {
  it('documents every command, option, exit code, the config file and the environment convention', () => {
    for (const command of COMMANDS) expect(HELP_TEXT).toMatch(new RegExp(`^  ${command}\\b`, 'm'));
    for (const option of [
      '--config FILE',
      '--json',
      '--limit N',
      '--provisioning-key-stdin',
      '--provisioning-key-file FILE',
      '--device-name NAME',
      '--device-type TYPE',
      '--help',
      '--version',
    ]) {
      expect(HELP_TEXT).toContain(option);
    }
    for (const line of ['  0   success', '  1   failure', '  2   usage error', '  69  run under systemd', '  78  configuration error']) {
      expect(HELP_TEXT).toContain(line);
    }
    expect(HELP_TEXT).toContain(DEFAULT_CONFIG_FILE);
    expect(HELP_TEXT).toContain('CLOUDJOBS_<SECTION>_<KEY>');
    for (const seed of ['CLOUD_API_URL', 'CLOUD_JOBS_POLLING_INTERVAL', 'DEBUG', 'DEVICE_API_KEY', 'DEVICE_UUID', 'ENABLE_CLOUD_JOBS', 'ENABLE_JOB_ENGINE']) {
      expect(HELP_TEXT).toContain(seed);
    }
    expect(Math.max(...HELP_TEXT.split('\n').map((line) => line.length))).toBeLessThanOrEqual(80);
  });
});

describe('parseArgs: signing commands', () => {
  it('parses keygen, sign with repeated --device, and verify', () => {
    expect(parseArgs(['keygen', '--out', 'keys'])).toEqual({ ...DEFAULTS, name: 'keygen', out: 'keys' });
    expect(parseArgs(['sign', '--key', 'k.pem', '--expires', '7d', '--device', 'a', '--device=b', '--nonce', 'job.json'])).toEqual({
      ...DEFAULTS,
      name: 'sign',
      key: 'k.pem',
      expires: '7d',
      devices: ['a', 'b'],
      nonce: true,
      file: 'job.json',
    });
    expect(parseArgs(['sign', '--key', 'k.pem', 'job.json'])).toEqual({ ...DEFAULTS, name: 'sign', key: 'k.pem', devices: [], nonce: false, file: 'job.json' });
    expect(parseArgs(['verify', 'job.json'])).toEqual({ ...DEFAULTS, name: 'verify', file: 'job.json' });
  });

  it('refuses what is missing or given twice where it may not be', () => {
    expect(usageErrorOf(['keygen'])).toBe('keygen needs --out DIR');
    expect(usageErrorOf(['sign', 'job.json'])).toBe('sign needs --key PRIVATE.pem');
    expect(usageErrorOf(['sign', '--key', 'a', '--key', 'b', 'job.json'])).toBe('--key given twice');
    expect(usageErrorOf(['sign', '--key', 'a'])).toBe('sign needs FILE');
    expect(usageErrorOf(['verify'])).toBe('verify needs FILE');
  });
});
