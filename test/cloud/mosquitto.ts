// Debian's mosquitto as the reference cloud's broker: started on 127.0.0.1
// with a generated configuration (a password file for credential tests, a TLS
// listener with a certificate from test-pki.ts), stoppable and restartable on
// the same ports so tests can take the broker away mid-run.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** Where Debian installs the broker (package mosquitto). */
export const MOSQUITTO_BIN = '/usr/sbin/mosquitto';
const PASSWD_BIN = '/usr/bin/mosquitto_passwd';

/** Whether mosquitto is installed (the Makefile installs it with the other test packages). */
export function hasMosquitto(): boolean {
  return existsSync(MOSQUITTO_BIN) && existsSync(PASSWD_BIN);
}

/** Options of startMosquitto. */
export interface MosquittoOptions {
  /** Users and passwords; with any, anonymous clients are refused. */
  users?: Record<string, string>;
  /** A TLS listener with this certificate (PEM files). */
  tls?: { certFile: string; keyFile: string };
}

/** A running broker. */
export interface Mosquitto {
  /** mqtt://127.0.0.1:PORT */
  readonly url: string;
  /** mqtts://127.0.0.1:PORT when a TLS listener was asked for. */
  readonly tlsUrl: string | null;
  readonly port: number;
  /** Adds (or changes) a user and makes the running broker reload its password file. */
  addUser(name: string, password: string): Promise<void>;
  /** Stops the broker (SIGTERM) and waits for it; the ports stay reserved for start(). */
  stop(): Promise<void>;
  /** Starts it again on the same ports. */
  start(): Promise<void>;
  isRunning(): boolean;
  /** What the broker logged (for failure messages). */
  output(): string;
  close(): Promise<void>;
}

/** Starts mosquitto on free loopback ports and resolves once it accepts connections. */
export async function startMosquitto(options: MosquittoOptions = {}): Promise<Mosquitto> {
  if (!hasMosquitto()) throw new Error(`mosquitto is not installed (${MOSQUITTO_BIN}); install it with: apt-get install -y mosquitto`);
  const dir = await mkdtemp(join(tmpdir(), 'cloudjobs-mosquitto-'));
  const port = await findFreePort();
  const tlsPort = options.tls ? await findFreePort() : null;
  const passwordFile = join(dir, 'passwd');
  const users = new Map(Object.entries(options.users ?? {}));
  const secured = users.size > 0;
  if (secured) await writePasswords(passwordFile, users);
  const lines = [
    'per_listener_settings false',
    'persistence false',
    'log_dest stderr',
    'log_type error',
    'log_type warning',
    'log_type notice',
    // as root mosquitto would switch to user mosquitto, which cannot read the files here
    ...(process.getuid?.() === 0 ? ['user root'] : []),
    `allow_anonymous ${secured ? 'false' : 'true'}`,
    ...(secured ? [`password_file ${passwordFile}`] : []),
    `listener ${port} 127.0.0.1`,
    ...(options.tls && tlsPort !== null
      ? [`listener ${tlsPort} 127.0.0.1`, `certfile ${options.tls.certFile}`, `keyfile ${options.tls.keyFile}`]
      : []),
  ];
  const configFile = join(dir, 'mosquitto.conf');
  await writeFile(configFile, `${lines.join('\n')}\n`, { mode: 0o600 });

  let child: ChildProcess | null = null;
  let text = '';
  const start = async (): Promise<void> => {
    if (child) return;
    const started = spawn(MOSQUITTO_BIN, ['-c', configFile], { stdio: ['ignore', 'pipe', 'pipe'] });
    started.stdout?.on('data', (chunk: Buffer) => (text += chunk.toString('utf8')));
    started.stderr?.on('data', (chunk: Buffer) => (text += chunk.toString('utf8')));
    started.on('exit', () => {
      if (child === started) child = null;
    });
    child = started;
    await waitForPort(port, () => child === started, () => text);
    if (tlsPort !== null) await waitForPort(tlsPort, () => child === started, () => text);
  };
  const stop = async (): Promise<void> => {
    const running = child;
    if (!running) return;
    const exited = new Promise<void>((resolve) => running.once('exit', () => resolve()));
    running.kill('SIGTERM');
    await exited;
    child = null;
  };
  await start();
  return {
    url: `mqtt://127.0.0.1:${port}`,
    tlsUrl: tlsPort === null ? null : `mqtts://127.0.0.1:${tlsPort}`,
    port,
    async addUser(name, password) {
      if (!secured) throw new Error('mosquitto: addUser needs a broker started with users');
      users.set(name, password);
      await writePasswords(passwordFile, users);
      child?.kill('SIGHUP');
      // the reload is asynchronous; give it a moment before a client uses the new user
      await new Promise((resolve) => setTimeout(resolve, 200));
    },
    stop,
    start,
    isRunning: () => child !== null,
    output: () => text,
    async close() {
      await stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

async function writePasswords(file: string, users: Map<string, string>): Promise<void> {
  await writeFile(file, '', { mode: 0o600 });
  for (const [name, password] of users) execFileSync(PASSWD_BIN, ['-b', file, name, password], { stdio: 'ignore' });
}

/** A free TCP port on loopback (bound and released: the caller binds it next). */
export function findFreePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

async function waitForPort(port: number, alive: () => boolean, output: () => string): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    if (!alive()) throw new Error(`mosquitto exited while starting:\n${output()}`);
    const open = await new Promise<boolean>((resolve) => {
      const socket = net.connect({ host: '127.0.0.1', port }, () => {
        socket.destroy();
        resolve(true);
      });
      socket.on('error', () => resolve(false));
    });
    if (open) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`mosquitto did not listen on 127.0.0.1:${port} within 10s:\n${output()}`);
}
