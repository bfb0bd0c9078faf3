import { mkdir, readdir, readFile, stat, writeFile, chmod } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { AgentError } from '../../../src/errors/errors.js';
import {
  createFileDurable,
  ensurePrivateDir,
  removeFileDurable,
  removeFileLazily,
  removeStaleTempFiles,
  writeFileAtomic,
} from '../../../src/state/atomic-file.js';
import { makeTempDir } from './helpers.js';

describe('writeFileAtomic', () => {
  it('writes the content with the exact mode and leaves no temp file', async () => {
    const dir = await makeTempDir();
    const path = join(dir, 'a.json');
    const previous = process.umask(0o077);
    try {
      await writeFileAtomic(path, 'hello', { mode: 0o644 });
    } finally {
      process.umask(previous);
    }
    expect(await readFile(path, 'utf8')).toBe('hello');
    expect((await stat(path)).mode & 0o777).toBe(0o644);
    expect(await readdir(dir)).toEqual(['a.json']);
  });

  it('replaces an existing file and keeps one name', async () => {
    const dir = await makeTempDir();
    const path = join(dir, 'a.json');
    await writeFileAtomic(path, 'one', { mode: 0o600 });
    await writeFileAtomic(path, Buffer.from('two'), { mode: 0o600 });
    expect(await readFile(path, 'utf8')).toBe('two');
    expect((await stat(path)).mode & 0o777).toBe(0o600);
    expect(await readdir(dir)).toEqual(['a.json']);
  });

  it('fails with STATE_IO naming the file when the directory is missing', async () => {
    const dir = await makeTempDir();
    const path = join(dir, 'missing', 'a.json');
    const error = await writeFileAtomic(path, 'x', { mode: 0o600 }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(AgentError);
    expect((error as AgentError).code).toBe('STATE_IO');
    expect((error as AgentError).message).toMatch(
      new RegExp(`^could not create a temporary file for ${path} \\(ENOENT`),
    );
  });

  it('without fsync (durable: false) keeps the same contract: exact mode, one name, no temp file, STATE_IO errors', async () => {
    const dir = await makeTempDir();
    const path = join(dir, 'status.json');
    const previous = process.umask(0o077);
    try {
      await writeFileAtomic(path, 'one', { mode: 0o644, durable: false });
      await writeFileAtomic(path, Buffer.from('two'), { mode: 0o644, durable: false });
    } finally {
      process.umask(previous);
    }
    expect(await readFile(path, 'utf8')).toBe('two');
    expect((await stat(path)).mode & 0o777).toBe(0o644);
    expect(await readdir(dir)).toEqual(['status.json']);

    // the rename fails (the target is a non-empty directory): the old content stays and the temp file goes
    const blocked = join(dir, 'blocked');
    await mkdir(join(blocked, 'inside'), { recursive: true });
    const error = await writeFileAtomic(blocked, 'x', { mode: 0o600, durable: false }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(AgentError);
    expect((error as AgentError).code).toBe('STATE_IO');
    expect((error as AgentError).message).toMatch(new RegExp(`^could not write ${blocked} \\(`));
    expect((await readdir(dir)).sort()).toEqual(['blocked', 'status.json']);
    const missing = await writeFileAtomic(join(dir, 'no', 'x.json'), 'x', { mode: 0o600, durable: false }).catch((e: unknown) => e);
    expect((missing as AgentError).message).toMatch(/^could not create a temporary file for .*\(ENOENT/);
  });

  it('survives a crash between temp write and rename: the old content stays and the temp file is cleaned up', async () => {
    const dir = await makeTempDir();
    const path = join(dir, 'a.json');
    await writeFileAtomic(path, '{"v":1}', { mode: 0o600 });
    // what a crash before rename leaves: a half-written temp file next to the old one
    await writeFile(join(dir, '.a.json.tmp-0123456789abcdef'), '{"v":');
    expect(await readFile(path, 'utf8')).toBe('{"v":1}');
    expect(await removeStaleTempFiles(dir)).toEqual(['.a.json.tmp-0123456789abcdef']);
    expect(await readdir(dir)).toEqual(['a.json']);
    await writeFileAtomic(path, '{"v":2}', { mode: 0o600 });
    expect(await readFile(path, 'utf8')).toBe('{"v":2}');
  });
});

describe('removeFileDurable and removeFileLazily', () => {
  it('report whether the file existed', async () => {
    const dir = await makeTempDir();
    const path = join(dir, 'a');
    await writeFile(path, 'x');
    expect(await removeFileDurable(path)).toBe(true);
    expect(await removeFileDurable(path)).toBe(false);
    await writeFile(path, 'x');
    expect(await removeFileLazily(path)).toBe(true);
    expect(await removeFileLazily(path)).toBe(false);
    expect(await readdir(dir)).toEqual([]);
    await expect(removeFileLazily(join(dir, 'missing-dir', 'a'))).resolves.toBe(false);
  });
});

describe('createFileDurable', () => {
  it('writes a new file under its own name with the exact mode: no temp file at any point', async () => {
    const dir = await makeTempDir();
    const path = join(dir, 'new.json');
    const previous = process.umask(0o077);
    try {
      await createFileDurable(path, '{"a":1}', 0o640);
    } finally {
      process.umask(previous);
    }
    expect(await readFile(path, 'utf8')).toBe('{"a":1}');
    expect((await stat(path)).mode & 0o777).toBe(0o640);
    expect(await readdir(dir)).toEqual(['new.json']);
  });

  it('replaces a file that exists after all, as writeFileAtomic does', async () => {
    const dir = await makeTempDir();
    const path = join(dir, 'a.json');
    await writeFile(path, 'old');
    await createFileDurable(path, 'new', 0o600);
    expect(await readFile(path, 'utf8')).toBe('new');
    expect(await readdir(dir)).toEqual(['a.json']);
  });

  it('fails with STATE_IO naming the file when the directory is missing', async () => {
    const dir = await makeTempDir();
    const path = join(dir, 'missing', 'a.json');
    await expect(createFileDurable(path, 'x', 0o600)).rejects.toSatisfy(
      (error: unknown) => error instanceof AgentError && error.code === 'STATE_IO' && error.message.includes(path),
    );
  });
});

describe('ensurePrivateDir', () => {
  it('creates missing directories with mode 0700', async () => {
    const dir = join(await makeTempDir(), 'var', 'lib', 'cloudjobs');
    await ensurePrivateDir(dir);
    expect((await stat(dir)).mode & 0o777).toBe(0o700);
  });

  it('tightens a looser directory and leaves a tighter one alone', async () => {
    const base = await makeTempDir();
    const loose = join(base, 'loose');
    const tight = join(base, 'tight');
    await mkdir(loose);
    await chmod(loose, 0o775);
    await mkdir(tight);
    await chmod(tight, 0o500);
    await ensurePrivateDir(loose);
    await ensurePrivateDir(tight);
    expect((await stat(loose)).mode & 0o777).toBe(0o700);
    expect((await stat(tight)).mode & 0o777).toBe(0o500);
  });

  it('refuses a path that is a file', async () => {
    const path = join(await makeTempDir(), 'file');
    await writeFile(path, 'x');
    await expect(ensurePrivateDir(path)).rejects.toThrow(
      `${path} exists but is not a directory; move it away so cloudjobs can keep its state there`,
    );
  });
});
