// Issue 21: one oversize MQTT packet must not cost the agent its memory. A
// hostile broker (a few lines here: CONNACK, SUBACK, then a PUBLISH declaring
// 200 MB and streaming its body) against the built executable: the agent ends
// the connection at the packet's header, logs one line however often the
// broker does it, and its resident memory stays where it was. Figures are
// printed, not timed.
import net from 'node:net';
import { writeFile, appendFile } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { readRssKiB } from './durability-helpers.js';
import { renderIni } from './harness.js';
import { createScope, logLines } from './polling-helpers.js';

const scope = createScope();
const servers: net.Server[] = [];
const sockets = new Set<net.Socket>();
afterEach(async () => {
  await scope.cleanup();
  for (const socket of sockets) socket.destroy();
  sockets.clear();
  for (const server of servers.splice(0)) await new Promise((resolve) => server.close(resolve));
});

const DECLARED = 200 * 1024 * 1024;
const STREAMED_LIMIT = 96 * 1024 * 1024;

// A broker that accepts, grants the subscription, then sends a PUBLISH of DECLARED bytes, streaming up to STREAMED_LIMIT of it.
async function startHostileBroker(): Promise<{ port: number; attempts: () => number; streamed: () => number }> {
  let attempts = 0;
  let streamed = 0;
  const server = net.createServer((socket) => {
    attempts += 1;
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    let connected = false;
    socket.on('data', (chunk) => {
      if (!connected && chunk[0] === 0x10) {
        connected = true;
        socket.write(Buffer.from([0x20, 0x02, 0x00, 0x00]));
        return;
      }
      const at = chunk.indexOf(0x82);
      if (at === -1) return;
      // SUBSCRIBE: the packet id follows the remaining length (a variable byte integer); grant QoS 1 to its one topic (generation devices)
      let idAt = at + 1;
      while (((chunk[idAt] ?? 0) & 0x80) !== 0) idAt += 1;
      const id = chunk.subarray(idAt + 1, idAt + 3);
      socket.write(Buffer.from([0x90, 0x03, id[0] ?? 0, id[1] ?? 1, 0x01]));
      const body = Buffer.alloc(1024 * 1024, 0x41);
      const head = Buffer.from([0x30, 0x80 | (DECLARED % 128), 0x80 | (Math.floor(DECLARED / 128) % 128), 0x80 | (Math.floor(DECLARED / 16384) % 128), Math.floor(DECLARED / 2097152)]);
      socket.write(head);
      let sent = 0;
      const pump = (): void => {
        while (!socket.destroyed && sent < STREAMED_LIMIT) {
          sent += body.length;
          streamed += body.length;
          if (!socket.write(body)) {
            socket.once('drain', pump);
            return;
          }
        }
      };
      pump();
    });
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { port: (server.address() as net.AddressInfo).port, attempts: () => attempts, streamed: () => streamed };
}

describe('MQTT packet limit', () => {
  it('a 200 MB PUBLISH is refused at its header: one log line, memory stays, polling goes on', async () => {
    const broker = await startHostileBroker();
    const { cloud, device } = await scope.cloud();
    const dirs = await scope.dirs(cloud, device, { polling: { interval: '500ms', max_backoff: '1s' } });
    const passwordFile = path.join(dirs.root, 'mqtt-password');
    await writeFile(passwordFile, 'secret\n', { mode: 0o600 });
    await appendFile(dirs.configFile, `\n${renderIni({ mqtt: { broker: `mqtt://127.0.0.1:${broker.port}`, username: `device_${device.uuid}`, password_file: passwordFile } })}`);
    const agent = scope.agent(dirs);
    await agent.waitForOutput(/push notifications/, 30_000);
    const pid = agent.child.pid!;
    const before = await readRssKiB(pid);
    const deadline = Date.now() + 60_000;
    while (broker.attempts() < 3 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 200));
    await new Promise((resolve) => setTimeout(resolve, 1000));
    const after = await readRssKiB(pid);
    const lines = logLines(agent.output(), 'ERROR', /over the limit of 64 KiB for one packet/);
    console.log(
      `push packet limit: ${broker.attempts()} attempts, ${Math.round(broker.streamed() / 1048576)} MiB offered in all, agent RSS ${Math.round(before / 1024)} -> ${Math.round(after / 1024)} MiB, ${lines.length} log line(s)`,
    );
    expect(broker.attempts()).toBeGreaterThanOrEqual(3);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain(`a packet of ${DECLARED + 5} bytes`);
    // a broker that drops every session right after accepting it: "connected" is news once, not per cycle
    expect(logLines(agent.output(), 'INFO', /push notifications: connected to/).length).toBeLessThanOrEqual(2);
    // the bug buffered the body: up to STREAMED_LIMIT (96 MiB) per attempt
    expect(after - before).toBeLessThan(32 * 1024);
  });
});
