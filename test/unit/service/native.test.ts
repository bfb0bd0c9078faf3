// The real x64 datagram addon, built by src/build/addon.sh, loaded by
// loadDatagramSender and sending to a real AF_UNIX socket owned by python3.
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  decodeEmbeddedAddon,
  loadDatagramSender,
  locatePackagedAddon,
  packagedAddonPath,
  tryLoadDatagramSender,
  type DatagramSender,
} from '../../../src/service/native.js';
import { createCaptureLog } from '../cloud/capture-log.js';

const ROOT = path.resolve(__dirname, '../../..');
const RECEIVER = path.join(ROOT, 'test/qemu/receive-datagrams.py');
const HOST_ARCH = ({ x64: 'x64', arm64: 'arm64', arm: 'armhf' } as Record<string, string>)[process.arch] ?? 'x64';
const IS_ROOT = process.geteuid?.() === 0;
// Debian's python3 starts in milliseconds; a pyenv shim takes seconds.
const PYTHON = fs.existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';

let addon: Buffer;
let work: string;

beforeAll(() => {
  execFileSync(path.join(ROOT, 'src/build/addon.sh'), [HOST_ARCH], { stdio: 'pipe' });
  addon = fs.readFileSync(path.join(ROOT, 'build/native', HOST_ARCH, 'datagram.node'));
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'cloudjobs-native-test-'));
});

afterAll(() => {
  fs.rmSync(work, { recursive: true, force: true });
});

/** Binds `address` in a python3 child; resolves once bound; `received` yields the datagrams. */
async function receive(address: string, count: number): Promise<{ received: Promise<Buffer[]> }> {
  const child = spawn(PYTHON, [RECEIVER, address, String(count), '20']);
  const lines = createInterface({ input: child.stdout });
  const got: Buffer[] = [];
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  await new Promise<void>((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`receiver exited with ${code}: ${stderr}`)));
    lines.once('line', (line) => (line === 'ready' ? resolve() : reject(new Error(`receiver said ${line}`))));
  });
  child.removeAllListeners('exit');
  lines.on('line', (line) => got.push(Buffer.from(line, 'hex')));
  const received = new Promise<Buffer[]>((resolve, reject) =>
    child.once('exit', (code) => (code === 0 ? resolve(got) : reject(new Error(`receiver exited ${code}: ${stderr}`)))),
  );
  return { received };
}

function uniqueName(): string {
  return `cloudjobs-test-${process.pid}-${Math.random().toString(36).slice(2)}`;
}

describe('loadDatagramSender with the real addon', () => {
  let sender: DatagramSender | null;
  const log = createCaptureLog();
  let runtimeDir: string;

  beforeAll(() => {
    runtimeDir = path.join(work, 'run', 'cloudjobs');
    sender = loadDatagramSender({ addonBytes: addon, dir: runtimeDir, log, tmpDir: work });
  });

  it('loads without logging anything', () => {
    expect(sender).not.toBeNull();
    expect(log.entries).toEqual([]);
  });

  it('gives the C heap\'s free pages back (glibc malloc_trim) when asked', () => {
    expect(typeof sender!.trimHeap).toBe('function');
    const held = Array.from({ length: 2000 }, (_, i) => Buffer.alloc(64 * 1024, i));
    held.length = 0;
    expect(() => sender!.trimHeap!()).not.toThrow();
  });

  it('sends the exact bytes to a socket path', async () => {
    const socket = path.join(work, 'notify.sock');
    const { received } = await receive(socket, 2);
    sender!.send(socket, Buffer.from('READY=1\nSTATUS=idle\n'));
    sender!.send(socket, Buffer.from([0, 1, 2, 255, 10]));
    expect(await received).toEqual([Buffer.from('READY=1\nSTATUS=idle\n'), Buffer.from([0, 1, 2, 255, 10])]);
  });

  it('sends to an abstract @name', async () => {
    const name = `@${uniqueName()}`;
    const { received } = await receive(name, 1);
    sender!.send(name, Buffer.from('WATCHDOG=1'));
    expect(await received).toEqual([Buffer.from('WATCHDOG=1')]);
  });

  it('throws errors with the errno code and the target', () => {
    const missing = path.join(work, 'missing.sock');
    expect(() => sender!.send(missing, Buffer.from('x'))).toThrow(
      expect.objectContaining({ code: 'ENOENT', message: `send to ${missing}: No such file or directory (ENOENT)` }),
    );
    const abstract = `@${uniqueName()}`;
    expect(() => sender!.send(abstract, Buffer.from('x'))).toThrow(
      expect.objectContaining({ code: 'ECONNREFUSED', message: `send to ${abstract}: Connection refused (ECONNREFUSED)` }),
    );
    expect(() => sender!.send(`/${'a'.repeat(107)}`, Buffer.from('x'))).toThrow(
      expect.objectContaining({ code: 'ENAMETOOLONG' }),
    );
    expect(() => sender!.send('', Buffer.from('x'))).toThrow(expect.objectContaining({ code: 'EINVAL' }));
  });

  it('throws EMSGSIZE for a datagram over the socket limit', async () => {
    const name = `@${uniqueName()}`;
    const { received } = await receive(name, 1);
    expect(() => sender!.send(name, Buffer.alloc(4 * 1024 * 1024, 0x41))).toThrow(
      expect.objectContaining({ code: 'EMSGSIZE', message: `send to ${name}: Message too long (EMSGSIZE)` }),
    );
    sender!.send(name, Buffer.from('after'));
    expect(await received).toEqual([Buffer.from('after')]);
  });

  it('throws a TypeError when data is not a Buffer', () => {
    expect(() => sender!.send('/x', 'text' as unknown as Buffer)).toThrow(
      new TypeError('send(path: string, data: Buffer) expected'),
    );
  });

  it.runIf(IS_ROOT)('as root: keeps the addon in the runtime dir under its content hash, 0644 in a 0755 dir', () => {
    const hash = createHash('sha256').update(addon).digest('hex');
    expect(fs.readdirSync(runtimeDir)).toEqual([`datagram-${hash.slice(0, 16)}.node`]);
    const file = fs.statSync(path.join(runtimeDir, `datagram-${hash.slice(0, 16)}.node`));
    expect([file.uid, file.mode & 0o7777]).toEqual([0, 0o644]);
    expect(fs.statSync(runtimeDir).mode & 0o7777).toBe(0o755);
    expect(fs.readdirSync(work).filter((n) => n.startsWith('cloudjobs-native-'))).toEqual([]);
  });

  it.runIf(!IS_ROOT)('as a normal user: loads from a private mkdtemp dir and leaves nothing behind', () => {
    expect(fs.existsSync(runtimeDir)).toBe(false);
    expect(fs.readdirSync(work).filter((n) => n.startsWith('cloudjobs-native-'))).toEqual([]);
  });
});

describe('loadDatagramSender failures: null and exactly one warning', () => {
  const PREFIX = 'native datagram addon not loaded: ';
  const SUFFIX = '; running without systemd notify and journald fields';

  function load(addonBytes: Uint8Array | null, dir: string) {
    const log = createCaptureLog();
    const sender = loadDatagramSender({ addonBytes, dir, log, tmpDir: work });
    expect(log.entries).toHaveLength(1);
    expect(log.entries[0]!.level).toBe('warn');
    expect(log.entries[0]!.message.startsWith(PREFIX)).toBe(true);
    expect(log.entries[0]!.message.endsWith(SUFFIX)).toBe(true);
    return { sender, reason: log.entries[0]!.message.slice(PREFIX.length, -SUFFIX.length) };
  }

  it('bad bytes: dlopen refuses them', () => {
    const { sender, reason } = load(Buffer.from('this is not an ELF shared object'), path.join(work, 'bad'));
    expect(sender).toBeNull();
    expect(reason).toMatch(/invalid ELF header|file too short/);
  });

  it('a shared object that is not the addon: no send()', () => {
    const libc = ['/lib/x86_64-linux-gnu/libm.so.6', '/lib/aarch64-linux-gnu/libm.so.6'].find((f) => fs.existsSync(f));
    const { sender, reason } = load(fs.readFileSync(libc!), path.join(work, 'not-addon'));
    expect(sender).toBeNull();
    expect(reason).toMatch(/Module did not self-register|does not export send\(\)/);
  });

  it('no embedded addon (running from source)', () => {
    const { sender, reason } = load(null, path.join(work, 'none'));
    expect(sender).toBeNull();
    expect(reason).toBe('this build embeds no addon (running from source, not the built executable)');
    expect(decodeEmbeddedAddon(undefined)).toBeNull();
    expect(decodeEmbeddedAddon('')).toBeNull();
    expect(Buffer.from(decodeEmbeddedAddon(addon.toString('base64'))!)).toEqual(addon);
  });

  it.runIf(IS_ROOT)('as root: a group/world-writable runtime dir is refused', () => {
    const dir = path.join(work, 'open');
    fs.mkdirSync(dir, { mode: 0o777 });
    fs.chmodSync(dir, 0o777);
    const { sender, reason } = load(addon, dir);
    expect(sender).toBeNull();
    expect(reason).toBe(`${dir} has mode 0777; it must not be writable by others`);
    expect(fs.readdirSync(dir)).toEqual([]);
  });

  it.runIf(IS_ROOT)('as root: a runtime dir owned by someone else is refused', () => {
    const dir = path.join(work, 'theirs');
    fs.mkdirSync(dir, { mode: 0o755 });
    fs.chownSync(dir, 65534, 65534);
    const { sender, reason } = load(addon, dir);
    expect(sender).toBeNull();
    expect(reason).toBe(`${dir} is owned by uid 65534, not by uid 0`);
  });

  it.runIf(IS_ROOT)('as root: a symlinked runtime dir is refused', () => {
    const target = path.join(work, 'real');
    const link = path.join(work, 'link');
    fs.mkdirSync(target, { mode: 0o755 });
    fs.symlinkSync(target, link);
    const { sender, reason } = load(addon, link);
    expect(sender).toBeNull();
    expect(reason).toBe(`${link} is not a directory (a symlink?)`);
  });

  it.runIf(IS_ROOT)('as root: a runtime dir inside a directory others can write is refused', () => {
    const parent = path.join(work, 'shared');
    fs.mkdirSync(parent, { mode: 0o777 });
    fs.chmodSync(parent, 0o777);
    const { sender, reason } = load(addon, path.join(parent, 'cloudjobs'));
    expect(sender).toBeNull();
    expect(reason).toBe(`${parent} (uid 0, mode 0777) lets others replace ${path.join(parent, 'cloudjobs')}`);
  });
});

// The armhf package's way: the addon installed next to the bundle, loaded in place.
describe('loadDatagramSender with an installed addon', () => {
  const PREFIX = 'native datagram addon not loaded: ';
  let hash: string;

  beforeAll(() => {
    hash = createHash('sha256').update(addon).digest('hex');
  });

  /** A 0755 directory holding the addon as `datagram.node` with `mode`; returns the file. */
  function install(name: string, mode = 0o644): string {
    const dir = path.join(work, name);
    fs.mkdirSync(dir, { mode: 0o755 });
    const file = path.join(dir, 'datagram.node');
    fs.writeFileSync(file, addon, { mode });
    fs.chmodSync(file, mode);
    return file;
  }

  function load(file: string, sha256 = hash) {
    const log = createCaptureLog();
    const sender = loadDatagramSender({ addonBytes: null, installed: { path: file, sha256 }, dir: path.join(work, 'unused-run'), log, tmpDir: work });
    return { sender, warnings: log.entries.map((e) => `${e.level}: ${e.message}`) };
  }

  it('loads the file in place, writes nothing, and sends', async () => {
    const file = install('installed-ok');
    const { sender, warnings } = load(file);
    expect(warnings).toEqual([]);
    expect(fs.readdirSync(path.dirname(file))).toEqual(['datagram.node']);
    expect(fs.existsSync(path.join(work, 'unused-run'))).toBe(false);
    const name = `@${uniqueName()}`;
    const { received } = await receive(name, 1);
    sender!.send(name, Buffer.from('READY=1'));
    expect(await received).toEqual([Buffer.from('READY=1')]);
  });

  it('refuses a file with another sha256 than the bundle was built with', () => {
    const file = install('installed-other-hash');
    const { sender, warnings } = load(file, 'f'.repeat(64));
    expect(sender).toBeNull();
    expect(warnings).toEqual([
      `warn: ${PREFIX}${file} has sha256 ${hash}, not the ${'f'.repeat(64)} this agent was built with; reinstall the package; running without systemd notify and journald fields`,
    ]);
  });

  it('refuses a missing file, a group-writable file and a symlink', () => {
    const missing = path.join(work, 'installed-none', 'datagram.node');
    fs.mkdirSync(path.dirname(missing), { mode: 0o755 });
    expect(load(missing).sender).toBeNull();
    expect(load(missing).warnings[0]).toContain(`${missing} is missing (`);
    const writable = install('installed-writable', 0o664);
    expect(load(writable).warnings[0]).toContain(`${writable} has mode 0664; it must not be writable by others`);
    const real = install('installed-real');
    const link = path.join(work, 'installed-real', 'link.node');
    fs.symlinkSync(real, link);
    expect(load(link).warnings[0]).toContain(`${link} is not a regular file (a symlink?)`);
  });

  it('refuses a file in a directory others can write', () => {
    const file = install('installed-open-dir');
    fs.chmodSync(path.dirname(file), 0o777);
    expect(load(file).warnings[0]).toContain(`${path.dirname(file)} has mode 0777; it must not be writable by others`);
  });

  it.runIf(IS_ROOT)('as root: refuses a file owned by another user', () => {
    const file = install('installed-theirs');
    fs.chownSync(file, 65534, 65534);
    expect(load(file).warnings[0]).toContain(`${file} is owned by uid 65534, not by root`);
  });
});

// Every package's way on a real boot (/run noexec): <prefix>/bin/cloudjobs finds the
// addon its package put in <prefix>/lib/cloudjobs and loads it in place, writing nothing.
describe('a single executable installed by a package', () => {
  it('looks for the addon in <prefix>/lib/cloudjobs next to <prefix>/bin', () => {
    expect(packagedAddonPath('/usr/bin/cloudjobs')).toBe('/usr/lib/cloudjobs/datagram.node');
    expect(packagedAddonPath('/opt/x/bin/cloudjobs')).toBe('/opt/x/lib/cloudjobs/datagram.node');
  });

  it('is packaged only when <prefix>/lib/cloudjobs is a directory; the sha256 is the embedded addon\'s', () => {
    const prefix = path.join(work, 'prefix-packaged');
    fs.mkdirSync(path.join(prefix, 'bin'), { recursive: true });
    expect(locatePackagedAddon(path.join(prefix, 'bin/cloudjobs'), addon)).toBeNull();
    fs.writeFileSync(path.join(prefix, 'lib'), '');
    expect(locatePackagedAddon(path.join(prefix, 'bin/cloudjobs'), addon)).toBeNull();
    fs.rmSync(path.join(prefix, 'lib'));
    fs.mkdirSync(path.join(prefix, 'lib/cloudjobs'), { recursive: true });
    expect(locatePackagedAddon(path.join(prefix, 'bin/cloudjobs'), addon)).toEqual({
      path: path.join(prefix, 'lib/cloudjobs/datagram.node'),
      sha256: createHash('sha256').update(addon).digest('hex'),
    });
  });

  it('loads the installed file even though the addon is embedded, and writes nothing', () => {
    const prefix = path.join(work, 'prefix-loads');
    fs.mkdirSync(path.join(prefix, 'lib/cloudjobs'), { recursive: true, mode: 0o755 });
    fs.writeFileSync(path.join(prefix, 'lib/cloudjobs/datagram.node'), addon, { mode: 0o644 });
    const runtimeDir = path.join(work, 'prefix-loads-run');
    const installed = locatePackagedAddon(path.join(prefix, 'bin/cloudjobs'), addon);
    const loaded = tryLoadDatagramSender({ addonBytes: addon, installed, dir: runtimeDir, tmpDir: work });
    expect(loaded.failure).toBeNull();
    expect(fs.existsSync(runtimeDir)).toBe(false);
    expect(fs.readdirSync(work).filter((n) => n.startsWith('cloudjobs-native-'))).toEqual([]);
  });

  it('never falls back to the embedded copy: a missing or changed installed file is the failure', () => {
    const prefix = path.join(work, 'prefix-broken');
    fs.mkdirSync(path.join(prefix, 'lib/cloudjobs'), { recursive: true, mode: 0o755 });
    const file = path.join(prefix, 'lib/cloudjobs/datagram.node');
    const runtimeDir = path.join(work, 'prefix-broken-run');
    const installed = locatePackagedAddon(path.join(prefix, 'bin/cloudjobs'), addon);
    const missing = tryLoadDatagramSender({ addonBytes: addon, installed, dir: runtimeDir, tmpDir: work });
    expect(missing.failure).toMatch(new RegExp(`^${file} is missing \\(.*\\); reinstall the package$`));
    fs.writeFileSync(file, Buffer.concat([addon, Buffer.from('x')]), { mode: 0o644 });
    const changed = tryLoadDatagramSender({ addonBytes: addon, installed, dir: runtimeDir, tmpDir: work });
    expect(changed.failure).toContain(`not the ${installed!.sha256} this agent was built with; reinstall the package`);
    expect(fs.existsSync(runtimeDir)).toBe(false);
  });
});

// build/cloudjobs outside a package: a noexec mount where the embedded copy would go is
// named before anything is written (dlopen alone says "failed to map segment").
describe('the embedded addon and a noexec mount', () => {
  const noexecAt = (mountPoint: string) => () =>
    `22 1 254:1 / / rw,relatime - ext4 /dev/vda1 rw\n30 22 0:40 / ${mountPoint} rw,nosuid,nodev,noexec - tmpfs tmpfs rw\n`;

  it.runIf(IS_ROOT)('as root: refuses a runtime dir on a noexec mount, says what to do, writes nothing', () => {
    const dir = path.join(work, 'noexec-run');
    const loaded = tryLoadDatagramSender({ addonBytes: addon, dir, tmpDir: work, readMountinfo: noexecAt(work) });
    expect(loaded.failure).toBe(
      `${dir} is on ${work}, which is mounted noexec, so the embedded addon cannot be loaded from there; ` +
        'set [agent] runtime_dir to a directory on a filesystem mounted without noexec, or install the package, ' +
        'which loads /usr/lib/cloudjobs/datagram.node in place',
    );
    expect(fs.readdirSync(dir)).toEqual([]);
  });

  it.runIf(!IS_ROOT)('as a normal user: refuses a TMPDIR on a noexec mount and leaves nothing behind', () => {
    const loaded = tryLoadDatagramSender({ addonBytes: addon, dir: path.join(work, 'unused'), tmpDir: work, readMountinfo: noexecAt(work) });
    expect(loaded.failure).toMatch(/which is mounted noexec, so the embedded addon cannot be loaded from there; set TMPDIR to a directory/);
    expect(fs.readdirSync(work).filter((n) => n.startsWith('cloudjobs-native-'))).toEqual([]);
  });

  it('loads where the mount allows exec, and when mountinfo cannot be read', () => {
    const dir = path.join(work, 'exec-run');
    expect(tryLoadDatagramSender({ addonBytes: addon, dir, tmpDir: work, readMountinfo: noexecAt('/elsewhere') }).failure).toBeNull();
    const unreadable = () => {
      throw new Error('EACCES');
    };
    expect(tryLoadDatagramSender({ addonBytes: addon, dir, tmpDir: work, readMountinfo: unreadable }).failure).toBeNull();
  });
});

// As root, prove the non-root path for real: a bundled driver run as `nobody`.
describe.runIf(IS_ROOT && fs.existsSync('/usr/bin/setpriv'))('as user nobody', () => {
  it('loads from a fresh 0700 mkdtemp dir, sends, and removes the dir', async () => {
    const shared = fs.mkdtempSync(path.join(os.tmpdir(), 'cloudjobs-nobody-'));
    try {
      fs.chmodSync(shared, 0o755);
      const tmp = path.join(shared, 'tmp');
      fs.mkdirSync(tmp, { mode: 0o1777 });
      fs.chmodSync(tmp, 0o1777);
      const driver = path.join(shared, 'driver.cjs');
      execFileSync(path.join(ROOT, 'node_modules/.bin/esbuild'), [
        '--bundle', '--platform=node', '--format=cjs', '--log-level=warning', `--outfile=${driver}`,
      ], {
        input: `import { loadDatagramSender } from ${JSON.stringify(path.join(ROOT, 'src/service/native.ts'))};
          import fs from 'node:fs';
          const [addonFile, runtimeDir, tmpDir, target] = process.argv.slice(2);
          const warnings = [];
          const log = { warn: (m) => warnings.push(m), error() {}, info() {}, debug() {}, child() { return log; } };
          const sender = loadDatagramSender({ addonBytes: fs.readFileSync(addonFile), dir: runtimeDir, log, tmpDir });
          if (!sender) { console.error(warnings.join('\\n')); process.exit(1); }
          sender.send(target, Buffer.from('from ' + process.geteuid()));
          console.log(JSON.stringify({ warnings, left: fs.readdirSync(tmpDir), runtimeDir: fs.existsSync(runtimeDir) }));`,
        cwd: ROOT,
      });
      const addonFile = path.join(shared, 'datagram.node');
      fs.writeFileSync(addonFile, addon, { mode: 0o644 });
      const name = `@${uniqueName()}`;
      const { received } = await receive(name, 1);
      const run = spawnSync('/usr/bin/setpriv', [
        '--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, driver, addonFile, '/run/cloudjobs-test-unused', tmp, name,
      ], { encoding: 'utf8' });
      expect(run.stderr).toBe('');
      expect(JSON.parse(run.stdout)).toEqual({ warnings: [], left: [], runtimeDir: false });
      expect(run.status).toBe(0);
      expect(await received).toEqual([Buffer.from('from 65534')]);
    } finally {
      fs.rmSync(shared, { recursive: true, force: true });
    }
  });
});
