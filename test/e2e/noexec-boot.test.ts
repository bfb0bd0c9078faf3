// Issue 19: the agent as a real boot starts it. Debian's initramfs mounts /run
// nodev,noexec,nosuid, and /tmp, /var/tmp and the state dir may be noexec too;
// systemd-nspawn gives containers an exec-able /run, so only this shows it.
// The built agent runs in its own mount namespace (unshare -m) where /run, /tmp,
// /var/tmp and the test's own dir (its runtime, state and work dirs, wherever
// TMPDIR is) are noexec, with a fake NOTIFY_SOCKET (an abstract socket bound by
// python3):
// - installed like the package (<prefix>/bin/cloudjobs, the addon in
//   <prefix>/lib/cloudjobs on a root-owned exec mount), it sends READY=1 and
//   writes no shared object anywhere;
// - bare (build/cloudjobs, no package around it), it cannot load its embedded
//   addon from the noexec runtime dir: it exits at once with 69 and says why
//   and what to do, instead of never sending READY.
// Root only (mount namespaces).
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { afterEach, describe, expect, it } from 'vitest';
import { EXIT_NO_READY } from '../../src/cli/native-preflight.js';
import { findNoexecMount } from '../../src/service/noexec-mount.js';
import { createAgentDirs, removeDirs, startAgent, startCloudWithDevice, stopAgent, type AgentDirs, type AgentProcess } from './harness.js';
import type { ReferenceCloud } from '../cloud/reference-cloud.js';

const ROOT = path.resolve(__dirname, '../..');
const HOST_ARCH = ({ x64: 'x64', arm64: 'arm64', arm: 'armhf' } as Record<string, string>)[process.arch] ?? 'x64';
const ADDON = path.join(ROOT, 'build/native', HOST_ARCH, 'datagram.node');
const RECEIVER = path.join(ROOT, 'test/qemu/receive-datagrams.py');
const PYTHON = fs.existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';
const isRoot = process.getuid?.() === 0;

// $1 agent dirs root, $2 addon file, $3 package|bare, $4 the executable, then its arguments.
const NOEXEC_BOOT = `set -eu
root=$1 addon=$2 mode=$3 exe=$4; shift 4
# the agent's dirs live in $root (under $TMPDIR, usually /tmp): noexec too, wherever that is
for d in /run /tmp /var/tmp "$root"; do mount --bind "$d" "$d"; mount -o remount,bind,nodev,nosuid,noexec "$d"; done
# the executable runs from a copy on a fresh exec-able tmpfs: the checkout may
# itself lie below a dir made noexec above (a clone under /tmp), and a bind
# mount of it would keep that mount's noexec
mkdir -p "$root/pkg"
mount -t tmpfs -o mode=0755 cloudjobs-pkg "$root/pkg"
if [ "$mode" = package ]; then
  mkdir -p "$root/pkg/usr/bin" "$root/pkg/usr/lib/cloudjobs"
  install -m 0755 "$exe" "$root/pkg/usr/bin/cloudjobs"
  install -m 0644 "$addon" "$root/pkg/usr/lib/cloudjobs/datagram.node"
  exe=$root/pkg/usr/bin/cloudjobs
else
  mkdir -p "$root/pkg/build"
  install -m 0755 "$exe" "$root/pkg/build/cloudjobs"
  exe=$root/pkg/build/cloudjobs
fi
exec "$exe" "$@"`;

interface NotifyListener {
  address: string;
  messages: string[];
  /** Resolves with the datagrams so far once one holds READY=1. */
  ready(timeoutMs: number): Promise<string[]>;
  close(): void;
}

// Binds an abstract AF_UNIX datagram socket in python3 (Node cannot) and collects what arrives.
async function listenForNotify(): Promise<NotifyListener> {
  const address = `@cloudjobs-noexec-${process.pid}-${randomBytes(4).toString('hex')}`;
  const child: ChildProcess = spawn(PYTHON, [RECEIVER, address, '1000', '120']);
  const lines = createInterface({ input: child.stdout! });
  const messages: string[] = [];
  await new Promise<void>((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`receiver exited with ${code}`)));
    lines.once('line', (line) => (line === 'ready' ? resolve() : reject(new Error(`receiver said ${line}`))));
  });
  child.removeAllListeners('exit');
  lines.on('line', (line) => messages.push(Buffer.from(line, 'hex').toString('utf8')));
  const hasReady = () => messages.some((m) => m.split('\n').includes('READY=1'));
  return {
    address,
    messages,
    ready: async (timeoutMs) => {
      const deadline = Date.now() + timeoutMs;
      while (!hasReady() && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50));
      if (!hasReady()) throw new Error(`no READY=1 within ${timeoutMs} ms; datagrams: ${JSON.stringify(messages)}`);
      return [...messages];
    },
    close: () => void child.kill('SIGKILL'),
  };
}

describe.runIf(isRoot)('a real boot: /run, /tmp, /var/tmp and the state dir mounted noexec', () => {
  const agents: AgentProcess[] = [];
  const listeners: NotifyListener[] = [];
  const clouds: ReferenceCloud[] = [];
  const dirsList: AgentDirs[] = [];

  afterEach(async () => {
    await Promise.all(agents.splice(0).map((a) => stopAgent(a, 10_000)));
    listeners.splice(0).forEach((l) => l.close());
    await Promise.all(clouds.splice(0).map((c) => c.close()));
    await Promise.all(dirsList.splice(0).map((d) => removeDirs(d)));
  });

  async function boot(mode: 'package' | 'bare') {
    const { cloud, device } = await startCloudWithDevice();
    clouds.push(cloud);
    const dirs = await createAgentDirs(cloud, device);
    dirsList.push(dirs);
    const notify = await listenForNotify();
    listeners.push(notify);
    const agent = startAgent(dirs, {
      prefix: ['unshare', '-m', '--propagation', 'private', 'sh', '-c', NOEXEC_BOOT, 'noexec-boot', dirs.root, ADDON, mode],
      env: { NOTIFY_SOCKET: notify.address },
    });
    agents.push(agent);
    return { cloud, dirs, notify, agent };
  }

  it('installed like the package: READY=1 arrives, and no shared object is written', async () => {
    const { cloud, dirs, notify, agent } = await boot('package');
    const messages = await notify.ready(60_000);
    expect(messages.join('\n')).toContain('READY=1');
    // the premise: the agent's runtime and state dirs really are on noexec mounts
    const mountinfo = fs.readFileSync(`/proc/${agent.child.pid}/mountinfo`, 'utf8');
    expect(findNoexecMount(dirs.runtimeDir, mountinfo)).toBe(dirs.root);
    expect(findNoexecMount(dirs.stateDir, mountinfo)).toBe(dirs.root);
    for (const dir of ['/run', '/tmp', '/var/tmp']) expect(findNoexecMount(`${dir}/x`, mountinfo)).toBe(dir);
    expect(findNoexecMount(path.join(dirs.root, 'pkg/usr/lib/cloudjobs/datagram.node'), mountinfo)).toBeNull();
    // the agent works: it polls the cloud
    await agent.waitForOutput(/cloudjobs \S+ started: polling/);
    await expect.poll(() => cloud.requests().length, { timeout: 20_000 }).toBeGreaterThan(0);
    expect(agent.output()).not.toMatch(/native datagram addon not loaded|cannot start under systemd/);
    const stopped = await stopAgent(agent);
    expect(stopped).toEqual({ code: 0, signal: null });
    const written = [dirs.runtimeDir, dirs.stateDir, dirs.root].flatMap((dir) =>
      fs.existsSync(dir) ? fs.readdirSync(dir).filter((name) => name.endsWith('.node')) : [],
    );
    expect(written).toEqual([]);
  });

  it('bare executable, no loadable addon: exits at once with 69, says why and what to do, sends nothing', async () => {
    const { notify, agent, dirs } = await boot('bare');
    const exited = await Promise.race([
      agent.exited,
      new Promise<'still running'>((resolve) => setTimeout(() => resolve('still running'), 30_000)),
    ]);
    expect(exited).toEqual({ code: EXIT_NO_READY, signal: null });
    const output = agent.output();
    expect(output).toContain('cannot start under systemd: the native helper that sends READY=1 to systemd is not loaded: ');
    expect(output).toContain(`${dirs.runtimeDir} is on ${dirs.root}, which is mounted noexec, so the embedded addon cannot be loaded from there`);
    expect(output).toContain('install the package');
    expect(output).toContain(`exit status ${EXIT_NO_READY} (EX_UNAVAILABLE), which cloudjobs.service does not restart`);
    expect(notify.messages).toEqual([]);
    expect(fs.existsSync(dirs.runtimeDir) ? fs.readdirSync(dirs.runtimeDir).filter((n) => n.endsWith('.node')) : []).toEqual([]);
  });
});
