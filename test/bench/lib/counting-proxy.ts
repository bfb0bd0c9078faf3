// A TCP relay between the agent and the reference cloud that counts the bytes
// on the wire in each direction and the connections opened (keep-alive check).
import net from 'node:net';

/** Totals seen by the relay so far. */
export interface WireCounts {
  toCloud: number;
  fromCloud: number;
  connections: number;
}

/** A running relay. */
export interface CountingProxy {
  port: number;
  counts(): WireCounts;
  close(): Promise<void>;
}

/** Listens on an ephemeral loopback port and relays every connection to `targetPort`. */
export async function startCountingProxy(targetPort: number): Promise<CountingProxy> {
  const totals: WireCounts = { toCloud: 0, fromCloud: 0, connections: 0 };
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    totals.connections += 1;
    const upstream = net.connect(targetPort, '127.0.0.1');
    for (const socket of [client, upstream]) {
      sockets.add(socket);
      socket.once('close', () => sockets.delete(socket));
      socket.on('error', () => {
        client.destroy();
        upstream.destroy();
      });
    }
    client.on('data', (chunk: Buffer) => (totals.toCloud += chunk.length));
    upstream.on('data', (chunk: Buffer) => (totals.fromCloud += chunk.length));
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('the counting proxy has no TCP address');
  return {
    port: address.port,
    counts: () => ({ ...totals }),
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}
