import { describe, expect, expectTypeOf, it } from 'vitest';
import { loadConfig } from '../../../src/config/load.js';
import { SCHEMA, type Config, type KeySpec } from '../../../src/config/schema.js';

// The runtime shape each kind parses to; the Config type derives the same from the schema.
function expectedType(spec: KeySpec): string {
  if (spec.kind === 'bool') return 'boolean';
  if (spec.kind === 'duration' && spec.default === '') return 'object'; // null while unset
  if (['duration', 'size', 'percent', 'int'].includes(spec.kind)) return 'number';
  if (spec.kind === 'list') return 'array';
  return 'string';
}

describe('Config derived from SCHEMA', () => {
  it('types each key by its kind (checked by make typecheck)', () => {
    expectTypeOf<Config['jobs']['max_parallel']>().toEqualTypeOf<number>();
    expectTypeOf<Config['jobs']['enabled']>().toEqualTypeOf<boolean>();
    expectTypeOf<Config['jobs']['allowed_users']>().toEqualTypeOf<readonly string[]>();
    expectTypeOf<Config['cloud']['api_generation']>().toEqualTypeOf<'auto' | 'devices' | 'agents'>();
    expectTypeOf<Config['logging']['level']>().toEqualTypeOf<'error' | 'warn' | 'info' | 'debug'>();
    expectTypeOf<Config['agent']['state_dir']>().toEqualTypeOf<string>();
    expectTypeOf<Config['security']['require_signed_jobs']>().toEqualTypeOf<boolean>();
    expectTypeOf<Config['mqtt']['poll_interval_when_connected']>().toEqualTypeOf<number | null>();
    expectTypeOf<keyof Config>().toEqualTypeOf<'cloud' | 'device' | 'polling' | 'jobs' | 'agent' | 'mqtt' | 'security' | 'metrics' | 'logging'>();
  });

  it('the loaded configuration holds every schema key, of the type the Config type promises, and nothing else', () => {
    const { config } = loadConfig({ file: '/etc/cloudjobs/agent.ini', fileText: '[cloud]\napi_url = https://c.example/api\n', env: {} });
    const seen = config as unknown as Record<string, Record<string, unknown>>;
    for (const spec of SCHEMA) {
      const value = seen[spec.section]?.[spec.key];
      const type = Array.isArray(value) ? 'array' : typeof value;
      expect(`${spec.section}.${spec.key}: ${type}`).toBe(`${spec.section}.${spec.key}: ${expectedType(spec)}`);
      if (spec.values) expect(spec.values).toContain(value);
    }
    const keys = Object.entries(seen).flatMap(([section, values]) => Object.keys(values).map((key) => `${section}.${key}`));
    expect(keys.sort()).toEqual(SCHEMA.map((spec) => `${spec.section}.${spec.key}`).sort());
  });
});
