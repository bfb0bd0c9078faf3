// The unit file against the config schema it must agree with; its validity
// under systemd is checked by systemd-analyze verify in test/integration.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { EXIT } from '../../../src/cli/context.js';
import { EXIT_NO_READY } from '../../../src/cli/native-preflight.js';
import { parseDuration } from '../../../src/config/parse-value.js';
import { SCHEMA } from '../../../src/config/schema.js';

const unit = readFileSync(path.resolve('systemd/cloudjobs.service'), 'utf8');

function settings(name: string): string[] {
  return unit
    .split('\n')
    .filter((line) => line.startsWith(`${name}=`))
    .map((line) => line.slice(name.length + 1));
}

function defaultMs(section: string, key: string): number {
  const spec = SCHEMA.find((s) => s.section === section && s.key === key);
  if (!spec) throw new Error(`no ${section}.${key} in SCHEMA`);
  const parsed = parseDuration(spec.default);
  if (!parsed.ok) throw new Error(`bad default of ${section}.${key}`);
  return parsed.value;
}

// systemd time spans as used in the unit: 6min, 60s, 30s, 5s, 10min
function systemdSpanMs(text: string): number {
  const match = /^(\d+)(min|s)$/.exec(text);
  if (!match) throw new Error(`unexpected time span ${text}`);
  return Number(match[1]) * (match[2] === 'min' ? 60_000 : 1000);
}

describe('systemd/cloudjobs.service', () => {
  it('is a notify service whose readiness only the main process may report', () => {
    expect(settings('Type')).toEqual(['notify']);
    expect(settings('NotifyAccess')).toEqual(['main']);
    expect(settings('ExecStart')).toEqual(['/usr/bin/cloudjobs run']);
  });

  it('restarts on failure but not after a configuration error (78) or without the READY sender (69)', () => {
    expect(settings('Restart')).toEqual(['on-failure']);
    expect(settings('RestartPreventExitStatus')).toEqual([`${EXIT.config} ${EXIT_NO_READY}`]);
  });

  it('gives a stopping agent more time than its default drain timeout plus kill grace', () => {
    expect(settings('KillMode')).toEqual(['mixed']);
    const stopMs = systemdSpanMs(settings('TimeoutStopSec')[0] ?? '');
    expect(stopMs).toBeGreaterThan(defaultMs('agent', 'drain_timeout') + defaultMs('jobs', 'kill_grace'));
  });

  it('uses the directories the config defaults point at', () => {
    expect(settings('StateDirectory')).toEqual(['cloudjobs']);
    expect(settings('StateDirectoryMode')).toEqual(['0700']);
    expect(settings('RuntimeDirectory')).toEqual(['cloudjobs']);
    // the boot marker (boot-identity.ts) must survive agent restarts and go only with the boot
    expect(settings('RuntimeDirectoryPreserve')).toEqual(['yes']);
    expect(settings('CacheDirectory')).toEqual(['cloudjobs']);
    expect(settings('ConfigurationDirectory')).toEqual(['cloudjobs']);
    const defaults = Object.fromEntries(SCHEMA.map((s) => [`${s.section}.${s.key}`, s.default]));
    expect(defaults['agent.state_dir']).toBe('/var/lib/cloudjobs');
    expect(defaults['agent.runtime_dir']).toBe('/run/cloudjobs');
    expect(defaults['jobs.work_dir']?.startsWith('/var/cache/cloudjobs/')).toBe(true);
  });

  it('has a watchdog and never MemoryDenyWriteExecute (V8 needs W+X memory)', () => {
    expect(settings('WatchdogSec')).toEqual(['60s']);
    expect(settings('MemoryDenyWriteExecute')).toEqual([]);
  });
});
