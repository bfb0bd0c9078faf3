// GET /metrics over HTTP for Prometheus: [metrics] listen. Only that path and
// method are served; slow or oversized requests are cut (a LAN peer is not
// trusted even where allow_remote lets it connect).
import { createServer, type Server } from 'node:http';
import type { ListenAddress } from '../config/listen-address.js';
import { EXPOSITION_CONTENT_TYPE } from './exposition.js';

const MAX_CONNECTIONS = 16;
const REQUEST_TIMEOUT_MS = 10_000;

/** A listening metrics endpoint. */
export interface MetricsServer {
  /** The bound port (the configured one, or the kernel's pick for port 0 in tests). */
  port: number;
  close(): Promise<void>;
}

/** Listens on `address` and answers GET /metrics with `render()`; rejects when it cannot listen. */
export async function startMetricsServer(address: ListenAddress, render: () => string): Promise<MetricsServer> {
  const server: Server = createServer((request, response) => {
    const path = (request.url ?? '').split('?', 1)[0];
    if (path !== '/metrics') {
      response.writeHead(404, { 'content-type': 'text/plain' }).end('not found: the metrics are at /metrics\n');
      return;
    }
    if (request.method !== 'GET' && request.method !== 'HEAD') {
      response.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain' }).end('method not allowed\n');
      return;
    }
    const body = render();
    response.writeHead(200, { 'content-type': EXPOSITION_CONTENT_TYPE, 'content-length': Buffer.byteLength(body) });
    response.end(request.method === 'HEAD' ? undefined : body);
  });
  server.maxConnections = MAX_CONNECTIONS;
  server.requestTimeout = REQUEST_TIMEOUT_MS;
  server.headersTimeout = REQUEST_TIMEOUT_MS;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(address.port, address.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const bound = server.address();
  return {
    port: typeof bound === 'object' && bound !== null ? bound.port : address.port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
