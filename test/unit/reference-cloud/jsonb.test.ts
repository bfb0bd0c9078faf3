// The reference cloud's JSONB storage: PostgreSQL's member order and jsonb::text.
import { describe, expect, it } from 'vitest';
import { jsonbText, reorderAsJsonb } from '../../cloud/jsonb.js';

describe('jsonb', () => {
  it('orders members shorter name first, then bytewise, at every level', () => {
    const stored = reorderAsJsonb({ version: '1.0', steps: [{ action: { type: 'x', input: {}, name: 'n' } }], b: 1, a: 2, é: 3, zz: 4 });
    expect(Object.keys(stored as object)).toEqual(['a', 'b', 'zz', 'é', 'steps', 'version']);
    expect(Object.keys((stored as { steps: { action: object }[] }).steps[0]!.action)).toEqual(['name', 'type', 'input']);
  });

  it('prints jsonb::text with a space after colons and commas', () => {
    expect(jsonbText({ version: '1.0', steps: [1, 2.5, null, true] })).toBe('{"steps": [1, 2.5, null, true], "version": "1.0"}');
  });
});
