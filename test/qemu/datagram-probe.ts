// A tiny entry bundled like the agent (same defines, same loader) to prove on
// each arch, under qemu-user, that the addon loads and sends: the embedded one
// (single executables) or the one installed next to the bundle (armhf).
// Usage: datagram-probe --version | datagram-probe send TARGET TEXT RUNTIME_DIR
import path from 'node:path';
import { decodeEmbeddedAddon, loadDatagramSender } from '../../src/service/native.js';
import { createConsoleTransport, createLog } from '../../src/log/log.js';

declare const __CLOUDJOBS_VERSION__: string | undefined;
declare const __CLOUDJOBS_ADDON__: string | undefined;
declare const __CLOUDJOBS_ADDON_SHA256__: string | undefined;

const [command, target, text, runtimeDir] = process.argv.slice(2);
if (command === '--version') {
  process.stdout.write(`${typeof __CLOUDJOBS_VERSION__ === 'string' ? __CLOUDJOBS_VERSION__ : 'dev'}\n`);
} else if (command === 'send' && target && text !== undefined && runtimeDir) {
  const log = createLog({ level: 'info', transports: [createConsoleTransport()] });
  const addon = decodeEmbeddedAddon(typeof __CLOUDJOBS_ADDON__ === 'string' ? __CLOUDJOBS_ADDON__ : undefined);
  const sha256 = typeof __CLOUDJOBS_ADDON_SHA256__ === 'string' ? __CLOUDJOBS_ADDON_SHA256__ : '';
  const installed = sha256 ? { path: path.join(path.dirname(__filename), 'datagram.node'), sha256 } : null;
  const sender = loadDatagramSender({ addonBytes: addon, installed, dir: runtimeDir, log });
  if (sender === null) process.exitCode = 1;
  else sender.send(target, Buffer.from(text));
} else {
  process.stderr.write('usage: datagram-probe --version | send TARGET TEXT RUNTIME_DIR\n');
  process.exitCode = 2;
}
