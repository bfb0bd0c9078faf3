// What the agent accepts of an offer before anything is stored (issue 16 items 3 and 4).
import { describe, expect, it } from 'vitest';
import { checkJobId, checkPathSegment, isNestedDeeperThan, MAX_DOCUMENT_DEPTH } from '../../../src/contract/limits.js';

describe('checkJobId', () => {
  it.each([
    ['', 'it is empty'],
    [' \t', 'it is empty'],
    ['.', 'it is "." (also as a %-escape), which URLs remove as a path segment'],
    ['..', 'it is ".." (also as a %-escape), which URLs remove as a path segment'],
    ['%2e', 'it is "." (also as a %-escape), which URLs remove as a path segment'],
    ['.%2E', 'it is ".." (also as a %-escape), which URLs remove as a path segment'],
    ['%25252E%25252E', 'it is ".." (also as a %-escape), which URLs remove as a path segment'],
    ['../x', 'it contains "/" or "\\" (also as a %-escape): it is not one URL path segment'],
    ['x%5Cy', 'it contains "/" or "\\" (also as a %-escape): it is not one URL path segment'],
    ['x\u001by', 'it contains control characters'],
    ['x\u009by', 'it contains control characters'],
    ['j'.repeat(300), 'it is 300 characters long; at most 256 are allowed'],
  ])('refuses %j: %s', (id, why) => {
    expect(checkJobId(id)).toBe(why);
  });

  it.each(['8479359e-dbeb-4858-813c-e8a9008dde04', 'job-1', 'a.b', '...', '.hidden', '100%', '%zz', 'naïve name'])('accepts %j', (id) => {
    expect(checkJobId(id)).toBeNull();
  });

  it('checkPathSegment applies the same rule to device uuids', () => {
    expect(checkPathSegment('..')).toBe('it is ".." (also as a %-escape), which URLs remove as a path segment');
    expect(checkPathSegment('8479359e-dbeb-4858-813c-e8a9008dde04')).toBeNull();
  });
});

describe('isNestedDeeperThan', () => {
  const deep = (levels: number): unknown => {
    let value: unknown = 'leaf';
    for (let i = 0; i < levels; i += 1) value = i % 2 === 0 ? { a: value } : [value];
    return value;
  };

  it('counts the top object as level 1 and scalars as no level', () => {
    expect(isNestedDeeperThan('text', 0)).toBe(false);
    expect(isNestedDeeperThan({}, 1)).toBe(false);
    expect(isNestedDeeperThan({}, 0)).toBe(true);
    expect(isNestedDeeperThan(deep(MAX_DOCUMENT_DEPTH), MAX_DOCUMENT_DEPTH)).toBe(false);
    expect(isNestedDeeperThan(deep(MAX_DOCUMENT_DEPTH + 1), MAX_DOCUMENT_DEPTH)).toBe(true);
  });

  it('walks a million levels without recursion (no stack overflow)', () => {
    expect(isNestedDeeperThan(JSON.parse(`${'['.repeat(1_000_000)}${']'.repeat(1_000_000)}`), MAX_DOCUMENT_DEPTH)).toBe(true);
  });

  it('finds a deep branch beside shallow ones', () => {
    expect(isNestedDeeperThan({ steps: [{ a: 1 }, { b: deep(40) }] }, MAX_DOCUMENT_DEPTH)).toBe(true);
  });
});
