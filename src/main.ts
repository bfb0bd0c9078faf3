// Entry point of the single executable: the only place that touches
// process.exit, signals and process.env. Everything else receives values.
import './heap-tuning.js';
import path from 'node:path';
import { runCli } from './cli/cli.js';
import { describeRuntime, EXIT } from './cli/context.js';
import type { TestLoopDeath } from './cli/test-loop-death.js';

declare const __CLOUDJOBS_VERSION__: string | undefined;
declare const __CLOUDJOBS_ADDON__: string | undefined;
declare const __CLOUDJOBS_ADDON_SHA256__: string | undefined;

const version = typeof __CLOUDJOBS_VERSION__ === 'string' ? __CLOUDJOBS_VERSION__ : '0.0.0-dev';
const addon = typeof __CLOUDJOBS_ADDON__ === 'string' && __CLOUDJOBS_ADDON__ ? Buffer.from(__CLOUDJOBS_ADDON__, 'base64') : null;
// The armhf package's bundle runs on the system's nodejs with the addon installed next to it.
const installedAddon =
  typeof __CLOUDJOBS_ADDON_SHA256__ === 'string' && __CLOUDJOBS_ADDON_SHA256__
    ? { path: path.join(path.dirname(__filename), 'datagram.node'), sha256: __CLOUDJOBS_ADDON_SHA256__ }
    : null;

// node:sea exists from Node 20.12; older Nodes (Debian bookworm's 18) are never a single executable.
function isSingleExecutable(): boolean {
  try {
    return (require('node:sea') as { isSea(): boolean }).isSea();
  } catch {
    return false;
  }
}

// An unhandled rejection leaves the agent in an unknown state: say what it was,
// then exit 70 (EX_SOFTWARE) so systemd restarts a clean process.
process.on('unhandledRejection', (reason) => {
  process.stderr.write(`cloudjobs: internal error (unhandled rejection): ${reason instanceof Error ? reason.stack ?? reason.message : String(reason)}\n`);
  process.stderr.write('', () => process.exit(EXIT.internal));
});

// TEST ONLY: CLOUDJOBS_TEST_LOOP_DEATH=<loop>:<ms> makes `cloudjobs run` treat
// that loop (poll, delivery, progress, status writer) as dead after <ms>, to
// prove that systemd restarts it (test/integration/loop-death.sh).
function readTestLoopDeath(value: string | undefined): TestLoopDeath | null {
  const match = /^(poll|delivery|progress|status writer):(\d+)$/.exec(value ?? '');
  return match ? { loop: match[1] as TestLoopDeath['loop'], afterMs: Number(match[2]) } : null;
}

runCli({
  argv: process.argv.slice(2),
  env: { ...process.env },
  version,
  runtime: describeRuntime({ nodeVersion: process.version, platform: process.platform, arch: process.arch, singleExecutable: isSingleExecutable() }),
  addon,
  installedAddon,
  executable: process.execPath,
  pid: process.pid,
  isRoot: typeof process.getuid === 'function' && process.getuid() === 0,
  uid: typeof process.getuid === 'function' ? process.getuid() : -1,
  stdin: process.stdin,
  stdout: process.stdout,
  stderr: process.stderr,
  onStopSignal(handler) {
    process.on('SIGTERM', () => handler('SIGTERM'));
    process.on('SIGINT', () => handler('SIGINT'));
  },
  setTitle(title) {
    process.title = title;
  },
  testLoopDeath: readTestLoopDeath(process.env.CLOUDJOBS_TEST_LOOP_DEATH),
}).then(
  (code) => {
    process.exitCode = code;
    // Let stdout/stderr drain; exit explicitly so lingering keep-alive sockets do not hold the process.
    process.stdout.write('', () => process.stderr.write('', () => process.exit(code)));
  },
  (error: unknown) => {
    process.stderr.write(`cloudjobs: internal error: ${error instanceof Error ? error.stack ?? error.message : String(error)}\n`);
    process.exit(1);
  },
);
