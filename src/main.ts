// Entry point of the single executable: the only place that touches
// process.exit, signals and process.env. Everything else receives values.
import './heap-tuning.js';
import { runCli } from './cli/cli.js';

declare const __CLOUDJOBS_VERSION__: string | undefined;
declare const __CLOUDJOBS_ADDON__: string | undefined;

const version = typeof __CLOUDJOBS_VERSION__ === 'string' ? __CLOUDJOBS_VERSION__ : '0.0.0-dev';
const addon = typeof __CLOUDJOBS_ADDON__ === 'string' && __CLOUDJOBS_ADDON__ ? Buffer.from(__CLOUDJOBS_ADDON__, 'base64') : null;

process.on('unhandledRejection', (reason) => {
  // Never die from a stray promise: say what happened so it can be fixed.
  process.stderr.write(`cloudjobs: internal error (unhandled rejection): ${reason instanceof Error ? reason.stack ?? reason.message : String(reason)}\n`);
});

runCli({
  argv: process.argv.slice(2),
  env: { ...process.env },
  version,
  addon,
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
