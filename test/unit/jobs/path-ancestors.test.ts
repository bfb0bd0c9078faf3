// The walk up to "/" under root's ownership checks (handler dirs, work_dir).
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ancestorsOf } from '../../../src/jobs/path-ancestors.js';

describe('ancestorsOf', () => {
  it('lists every directory above the path, nearest first, ending with /', () => {
    expect(ancestorsOf('/var/cache/cloudjobs/work')).toEqual(['/var/cache/cloudjobs', '/var/cache', '/var', '/']);
  });

  it('normalises first: a trailing slash, "." and ".." cannot skip or repeat a directory', () => {
    expect(ancestorsOf('/var/cache/cloudjobs/work/')).toEqual(['/var/cache/cloudjobs', '/var/cache', '/var', '/']);
    expect(ancestorsOf('/var/./cache//x/../cloudjobs/work')).toEqual(['/var/cache/cloudjobs', '/var/cache', '/var', '/']);
  });

  it('makes a relative path absolute against the working directory', () => {
    const cwd = process.cwd();
    expect(ancestorsOf('work')).toEqual([cwd, ...ancestorsOf(cwd)]);
    expect(ancestorsOf('work').at(-1)).toBe(path.parse(cwd).root);
  });

  it('stops at /: the root and a file right below it have only /', () => {
    expect(ancestorsOf('/')).toEqual(['/']);
    expect(ancestorsOf('/etc')).toEqual(['/']);
  });
});
