// The README's config table is the schema's: regenerate it with renderConfigTable() when a key changes.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { renderConfigTable } from '../../../src/config/render.js';

describe('README', () => {
  const readme = readFileSync('README.md', 'utf8');

  it('holds the config table generated from the schema, unchanged', () => {
    const start = readme.indexOf('<!-- config-table:start -->\n');
    const end = readme.indexOf('<!-- config-table:end -->');
    expect(start).toBeGreaterThan(0);
    expect(end).toBeGreaterThan(start);
    expect(readme.slice(start + '<!-- config-table:start -->\n'.length, end)).toBe(renderConfigTable());
  });

  it('documents both commands and every CLI command', () => {
    for (const word of ['make demo', 'make test', 'cloudjobs run', 'check-config', 'cloudjobs status', 'cloudjobs history', 'cloudjobs exec', 'cloudjobs register']) {
      expect(readme).toContain(word);
    }
  });
});
