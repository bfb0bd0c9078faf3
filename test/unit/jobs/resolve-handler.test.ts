import { execFileSync } from 'node:child_process';
import { chmod, chown, mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { checkHandlerName, checkOwnership, resolveHandler } from '../../../src/jobs/resolve-handler.js';
import type { HandlerUser } from '../../../src/jobs/resolve-handler.js';
import { HANDLER_FIXTURES_DIR } from '../../fixtures/jobs/load-job-fixture.js';

// Real files in a private tree below /tmp. /tmp itself is world-writable, so
// these tests trust it (trustedDir) and check everything below it for real;
// one test walks to / without trustedDir and must see /tmp refused.
const TMP = path.resolve(os.tmpdir());
const NOBODY: HandlerUser = { name: 'nobody', uid: 65534, gid: 65534, groups: [65534] };
const ROOT: HandlerUser = { name: 'root', uid: 0, gid: 0, groups: [0] };

let base: string;
let first: string;
let second: string;

async function writeHandler(dir: string, name: string, mode = 0o755): Promise<string> {
  const file = path.join(dir, name);
  await writeFile(file, '#!/bin/sh\necho hi\n');
  await chmod(file, mode);
  return file;
}

beforeEach(async () => {
  base = await mkdtemp(path.join(TMP, 'cloudjobs-handlers-'));
  await chmod(base, 0o755);
  first = path.join(base, 'etc-handlers');
  second = path.join(base, 'lib-handlers');
  await mkdir(first, { mode: 0o755 });
  await mkdir(second, { mode: 0o755 });
});

afterEach(async () => {
  await rm(base, { recursive: true, force: true });
});

function options(extra: Partial<Parameters<typeof resolveHandler>[1]> = {}): Parameters<typeof resolveHandler>[1] {
  return { handlerDirs: [first, second], inputPath: null, user: null, trustedDir: TMP, ...extra };
}

describe('checkHandlerName', () => {
  it.each<[string, string | null]>([
    ['download-file.sh', null],
    ['echo', null],
    ['a..b', null],
    ['', 'input.handler must not be empty'],
    ['../bin/sh', 'input.handler "../bin/sh" must be a plain file name without "/"'],
    ['/bin/sh', 'input.handler "/bin/sh" must be a plain file name without "/"'],
    ['..', 'input.handler ".." must not start with "."'],
    ['.', 'input.handler "." must not start with "."'],
    ['.hidden', 'input.handler ".hidden" must not start with "."'],
    ['a\nb', 'input.handler "a\\nb" must not contain control characters'],
    ['a\u0000b', 'input.handler "a\\u0000b" must not contain control characters'],
    ['x'.repeat(256), 'input.handler is 256 bytes long; a file name has at most 255'],
  ])('%j -> %j', (name, problem) => {
    expect(checkHandlerName(name)).toBe(problem);
  });
});

describe('checkOwnership', () => {
  it.each<[number, number, string[]]>([
    [0, 0o100755, []],
    [0, 0o40775, ['/h is group-writable (mode 0775); chmod g-w it']],
    [0, 0o41757, ['/h is world-writable (mode 1757); chmod o-w it']],
    [0, 0o41777, ['/h is group- and world-writable (mode 1777); chmod go-w it']],
    [0, 0o40777, ['/h is group- and world-writable (mode 0777); chmod go-w it']],
    [1000, 0o40755, ['/h is owned by uid 1000, not root; chown root it']],
  ])('uid %d mode %o', (uid, mode, problems) => {
    expect(checkOwnership('/h', { uid, mode })).toEqual(problems);
  });
});

describe('resolveHandler', () => {
  it('finds a handler in the first directory that has it, returning its real path', async () => {
    const inSecond = await writeHandler(second, 'run.sh');
    expect(await resolveHandler('run.sh', options())).toEqual({ ok: true, path: inSecond });
    const inFirst = await writeHandler(first, 'run.sh');
    expect(await resolveHandler('run.sh', options())).toEqual({ ok: true, path: inFirst });
  });

  it.each([null, '', 'default'])('input.path %j searches every handler dir', async (inputPath) => {
    const file = await writeHandler(second, 'run.sh');
    expect(await resolveHandler('run.sh', options({ inputPath }))).toEqual({ ok: true, path: file });
  });

  it('input.path naming an allowed directory searches only that one', async () => {
    await writeHandler(first, 'run.sh');
    const file = await writeHandler(second, 'run.sh');
    expect(await resolveHandler('run.sh', options({ inputPath: `${second}/` }))).toEqual({ ok: true, path: file });
  });

  it('refuses an input.path that is not a handler dir, or is relative', async () => {
    await writeHandler(base, 'run.sh');
    expect(await resolveHandler('run.sh', options({ inputPath: base }))).toEqual({
      ok: false,
      problems: [`input.path "${base}" is not one of jobs.handler_dirs (${first}, ${second})`],
    });
    expect(await resolveHandler('run.sh', options({ inputPath: 'etc-handlers' }))).toEqual({
      ok: false,
      problems: [`input.path "etc-handlers" is not one of jobs.handler_dirs (${first}, ${second})`],
    });
    // Going through .. does not get around the list.
    expect(await resolveHandler('run.sh', options({ inputPath: `${first}/..` }))).toEqual({
      ok: false,
      problems: [`input.path "${first}/.." is not one of jobs.handler_dirs (${first}, ${second})`],
    });
  });

  it('says where it looked when the handler is missing (missing dirs are skipped)', async () => {
    const gone = path.join(base, 'gone');
    expect(await resolveHandler('run.sh', options({ handlerDirs: [gone, second] }))).toEqual({
      ok: false,
      problems: [`input.handler "run.sh" was not found in ${gone}, ${second}`],
    });
    expect(await resolveHandler('run.sh', options({ handlerDirs: [] }))).toEqual({
      ok: false,
      problems: ['input.handler "run.sh" was not found in no directory (jobs.handler_dirs is empty)'],
    });
  });

  it('refuses bad names before touching the disk', async () => {
    expect(await resolveHandler('../lib-handlers/run.sh', options())).toEqual({
      ok: false,
      problems: ['input.handler "../lib-handlers/run.sh" must be a plain file name without "/"'],
    });
  });

  it('accepts a symlink to a file inside its directory', async () => {
    const target = await writeHandler(first, 'download-file');
    await symlink('download-file', path.join(first, 'download-file.sh'));
    expect(await resolveHandler('download-file.sh', options())).toEqual({ ok: true, path: target });
  });

  it('refuses a symlink that escapes its directory, naming it', async () => {
    const outside = await writeHandler(base, 'evil.sh');
    await symlink(outside, path.join(first, 'run.sh'));
    expect(await resolveHandler('run.sh', options())).toEqual({
      ok: false,
      problems: [
        `${path.join(first, 'run.sh')} is a symlink to ${outside}, outside ${first}; a handler must stay inside its directory`,
      ],
    });
  });

  it('refuses a symlink into a sibling directory whose name shares the prefix', async () => {
    const sibling = `${first}-evil`;
    await mkdir(sibling, { mode: 0o755 });
    const outside = await writeHandler(sibling, 'x');
    await symlink(outside, path.join(first, 'run.sh'));
    const result = await resolveHandler('run.sh', options());
    expect(result).toEqual({
      ok: false,
      problems: [
        `${path.join(first, 'run.sh')} is a symlink to ${outside}, outside ${first}; a handler must stay inside its directory`,
      ],
    });
  });

  it('refuses a broken symlink, and does not fall through to the next directory', async () => {
    await writeHandler(second, 'run.sh');
    await symlink('nowhere', path.join(first, 'run.sh'));
    expect(await resolveHandler('run.sh', options())).toEqual({
      ok: false,
      problems: [`${path.join(first, 'run.sh')} is a broken symlink`],
    });
  });

  it('refuses a directory or a FIFO', async () => {
    await mkdir(path.join(first, 'dir.sh'), { mode: 0o755 });
    expect(await resolveHandler('dir.sh', options())).toEqual({
      ok: false,
      problems: [`${path.join(first, 'dir.sh')} is not a regular file (a directory)`],
    });
    execFileSync('mkfifo', ['-m', '0755', path.join(first, 'fifo.sh')]);
    expect(await resolveHandler('fifo.sh', options())).toEqual({
      ok: false,
      problems: [`${path.join(first, 'fifo.sh')} is not a regular file (a FIFO)`],
    });
  });

  it('refuses a file without any executable bit', async () => {
    const file = await writeHandler(first, 'run.sh', 0o644);
    expect(await resolveHandler('run.sh', options())).toEqual({
      ok: false,
      problems: [`${file} is not executable (mode 0644); chmod +x it`],
    });
  });

  it('refuses a handler the run-as user cannot execute, and accepts one it can', async () => {
    const file = await writeHandler(first, 'run.sh', 0o750);
    expect(await resolveHandler('run.sh', options({ user: NOBODY }))).toEqual({
      ok: false,
      problems: [`${file} is not executable by user "nobody" (mode 0750, group 0)`],
    });
    // In the file's group: the group bits apply.
    expect(await resolveHandler('run.sh', options({ user: { ...NOBODY, groups: [0, 65534] } }))).toEqual({
      ok: true,
      path: file,
    });
    // root without capabilities is the owner: the owner bits apply.
    expect(await resolveHandler('run.sh', options({ user: ROOT }))).toEqual({ ok: true, path: file });
  });

  it('refuses a directory the run-as user cannot search', async () => {
    const file = await writeHandler(first, 'run.sh');
    await chmod(first, 0o700);
    expect(await resolveHandler('run.sh', options({ user: NOBODY }))).toEqual({
      ok: false,
      problems: [`${first} is not searchable by user "nobody" (mode 0700); chmod o+x it`],
    });
    expect(await resolveHandler('run.sh', options({ user: ROOT }))).toEqual({ ok: true, path: file });
  });

  it('refuses a group-writable handler dir, naming it and the fix', async () => {
    await writeHandler(first, 'run.sh');
    await chmod(first, 0o775);
    expect(await resolveHandler('run.sh', options())).toEqual({
      ok: false,
      problems: [`${first} is group-writable (mode 0775); chmod g-w it`],
    });
  });

  it('refuses every unsafe path above the handler at once', async () => {
    const file = await writeHandler(first, 'run.sh');
    await chown(file, 1000, 1000);
    await chmod(file, 0o757);
    await chmod(base, 0o777);
    expect(await resolveHandler('run.sh', options())).toEqual({
      ok: false,
      problems: [
        `${file} is owned by uid 1000, not root; chown root it`,
        `${file} is world-writable (mode 0757); chmod o-w it`,
        `${base} is group- and world-writable (mode 0777); chmod go-w it`,
      ],
    });
  });

  it('refuses a directory owned by another user', async () => {
    await writeHandler(first, 'run.sh');
    await chown(first, 1000, 0);
    expect(await resolveHandler('run.sh', options())).toEqual({
      ok: false,
      problems: [`${first} is owned by uid 1000, not root; chown root it`],
    });
  });

  it('checks the directory holding a symlinked handler dir, not only the real path', async () => {
    const realDir = path.join(base, 'real');
    const linkParent = path.join(base, 'links');
    await mkdir(realDir, { mode: 0o755 });
    await mkdir(linkParent, { mode: 0o755 });
    const file = await writeHandler(realDir, 'run.sh');
    const linked = path.join(linkParent, 'handlers');
    await symlink(realDir, linked);
    expect(await resolveHandler('run.sh', options({ handlerDirs: [linked] }))).toEqual({ ok: true, path: file });
    // Whoever can write `links` can repoint the symlink.
    await chmod(linkParent, 0o775);
    expect(await resolveHandler('run.sh', options({ handlerDirs: [linked] }))).toEqual({
      ok: false,
      problems: [`${linkParent} is group-writable (mode 0775); chmod g-w it`],
    });
  });

  it('walks all the way to / by default: a handler below /tmp is refused', async () => {
    await writeHandler(first, 'run.sh');
    expect(await resolveHandler('run.sh', options({ trustedDir: undefined }))).toEqual({
      ok: false,
      problems: [`${TMP} is group- and world-writable (mode 1777); chmod go-w it`],
    });
  });

  it('accepts the committed fixture handlers with the full walk to /', async () => {
    const dirs = [HANDLER_FIXTURES_DIR];
    const user = { name: 'nobody', uid: 65534, gid: 65534, groups: [65534] };
    expect(await resolveHandler('echo', { handlerDirs: dirs, inputPath: null, user })).toEqual({
      ok: true,
      path: path.join(HANDLER_FIXTURES_DIR, 'echo'),
    });
    expect(await resolveHandler('download-file.sh', { handlerDirs: dirs, inputPath: 'default', user })).toEqual({
      ok: true,
      path: path.join(HANDLER_FIXTURES_DIR, 'download-file'),
    });
    expect(await resolveHandler('not-executable.sh', { handlerDirs: dirs, inputPath: null, user })).toEqual({
      ok: false,
      problems: [`${path.join(HANDLER_FIXTURES_DIR, 'not-executable.sh')} is not executable (mode 0644); chmod +x it`],
    });
    const escapes = path.join(HANDLER_FIXTURES_DIR, 'escapes-directory.sh');
    const target = path.resolve(HANDLER_FIXTURES_DIR, '..', 'jobs', 'aws-echo.json');
    expect(await resolveHandler('escapes-directory.sh', { handlerDirs: dirs, inputPath: null, user })).toEqual({
      ok: false,
      problems: [`${escapes} is a symlink to ${target}, outside ${HANDLER_FIXTURES_DIR}; a handler must stay inside its directory`],
    });
  });
});
