// Test-only AF_UNIX datagram plumbing: Node cannot bind or send SOCK_DGRAM on
// AF_UNIX, so a python3 child receives (a real socket, as systemd would own)
// and a spawnSync'd python3 sends (standing in for the native addon here).
import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import type { DatagramSender } from '../../../src/service/native.js';

const PYTHON = '/usr/bin/python3';

const RECEIVER = `
import base64, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 1024 * 1024)
s.bind(sys.argv[1])
print("bound", flush=True)
while True:
    data = s.recv(1 << 20)
    print(base64.b64encode(data).decode(), flush=True)
`;

const SENDER = `
import socket, sys
data = sys.stdin.buffer.read()
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 * 1024 * 1024)
path = sys.argv[1]
s.sendto(data, ("\\0" + path[1:]) if path.startswith("@") else path)
`;

/** A bound datagram socket whose received datagrams the test can await. */
export interface DatagramReceiver {
  readonly path: string;
  /** Resolves with the next datagram not yet taken. */
  next(): Promise<Buffer>;
  /** Every datagram received so far that next() has not taken. */
  drain(): Buffer[];
  close(): Promise<void>;
}

/** Binds a real AF_UNIX datagram socket in a fresh temp directory. */
export async function startDatagramReceiver(): Promise<DatagramReceiver> {
  const dir = mkdtempSync(join(tmpdir(), 'cloudjobs-dgram-'));
  const path = join(dir, 'socket');
  const child: ChildProcessWithoutNullStreams = spawn(PYTHON, ['-c', RECEIVER, path]);
  const queue: Buffer[] = [];
  const waiters: ((b: Buffer) => void)[] = [];
  const lines = createInterface({ input: child.stdout });
  await new Promise<void>((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', (code) => reject(new Error(`receiver exited early with ${code}`)));
    lines.once('line', (line) => (line === 'bound' ? resolve() : reject(new Error(`receiver said ${line}`))));
  });
  lines.on('line', (line) => {
    const data = Buffer.from(line, 'base64');
    const waiter = waiters.shift();
    if (waiter) waiter(data);
    else queue.push(data);
  });
  return {
    path,
    next: () => {
      const data = queue.shift();
      return data ? Promise.resolve(data) : new Promise((resolve) => waiters.push(resolve));
    },
    drain: () => queue.splice(0),
    close: async () => {
      child.removeAllListeners('exit');
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      await exited;
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A DatagramSender for tests: one python3 sendto per datagram; throws like the addon on failure. */
export function createTestSender(): DatagramSender & { sent: number } {
  const sender = {
    sent: 0,
    send(socketPath: string, data: Buffer): void {
      const result = spawnSync(PYTHON, ['-c', SENDER, socketPath], { input: data });
      if (result.status !== 0) {
        const lastLine = result.stderr.toString().trim().split('\n').pop() ?? '';
        throw new Error(`sendto ${socketPath} failed: ${lastLine}`);
      }
      sender.sent += 1;
    },
  };
  return sender;
}

/** Parses a journal native-protocol datagram into [name, value] pairs, in order. */
export function parseJournalDatagram(data: Buffer): [string, string][] {
  const fields: [string, string][] = [];
  let at = 0;
  while (at < data.length) {
    const nl = data.indexOf(0x0a, at);
    if (nl < 0) throw new Error(`unterminated field at byte ${at}`);
    const line = data.subarray(at, nl).toString('utf8');
    const eq = line.indexOf('=');
    if (eq >= 0) {
      fields.push([line.slice(0, eq), line.slice(eq + 1)]);
      at = nl + 1;
    } else {
      const length = Number(data.readBigUInt64LE(nl + 1));
      const start = nl + 9;
      fields.push([line, data.subarray(start, start + length).toString('utf8')]);
      if (data[start + length] !== 0x0a) throw new Error(`binary field ${line} not followed by newline`);
      at = start + length + 1;
    }
  }
  return fields;
}
