import { afterEach, describe, expect, it } from 'vitest';
import { createManualClock, createSystemClock } from '../../../src/clock/clock.js';
import { AbortedError } from '../../../src/errors/errors.js';
import { CloudError } from '../../../src/cloud/cloud-error.js';
import { createHttpTransport, type HttpTransport } from '../../../src/cloud/http.js';
import { sendJson, startTestServer, type TestServer, expectCloudError } from './test-server.js';

const servers: TestServer[] = [];
const transports: HttpTransport[] = [];

afterEach(async () => {
  for (const t of transports.splice(0)) t.close();
  for (const s of servers.splice(0)) await s.close();
});

async function serve(handler: Parameters<typeof startTestServer>[0]): Promise<TestServer> {
  const server = await startTestServer(handler);
  servers.push(server);
  return server;
}

function transport(options: { timeoutMs?: number; maxBodyBytes?: number } = {}): HttpTransport {
  const t = createHttpTransport({
    timeoutMs: options.timeoutMs ?? 5000,
    clock: createSystemClock(),
    ...(options.maxBodyBytes === undefined ? {} : { maxBodyBytes: options.maxBodyBytes }),
  });
  transports.push(t);
  return t;
}

const failure = expectCloudError;

describe('http transport', () => {
  it('sends JSON with the given headers and returns status, content type and body', async () => {
    const server = await serve((_req, res) => sendJson(res, 201, { ok: true }));
    const response = await transport().request({
      method: 'PATCH',
      url: `${server.url}/a/b`,
      headers: { 'x-device-api-key': 'k1' },
      json: { status: 'SUCCEEDED' },
    });
    expect(response.status).toBe(201);
    expect(response.contentType).toBe('application/json');
    expect(JSON.parse(response.body)).toEqual({ ok: true });
    expect(response.header('content-length')).toBe('11');
    expect(server.seen).toHaveLength(1);
    expect(server.seen[0]!.method).toBe('PATCH');
    expect(server.seen[0]!.url).toBe('/a/b');
    expect(server.seen[0]!.headers['x-device-api-key']).toBe('k1');
    expect(server.seen[0]!.headers['content-type']).toBe('application/json');
    expect(JSON.parse(server.seen[0]!.body)).toEqual({ status: 'SUCCEEDED' });
  });

  it('reuses one keep-alive connection for sequential requests without process warnings', async () => {
    const server = await serve((_req, res) => sendJson(res, 200, { n: 1 }));
    const t = transport();
    for (let i = 0; i < 25; i += 1) {
      const response = await t.request({ method: 'GET', url: `${server.url}/x` });
      expect(response.status).toBe(200);
    }
    expect(server.seen).toHaveLength(25);
    expect(server.connections()).toBe(1);
  });

  it('times out a server that accepts the connection and never answers', async () => {
    const server = await serve(() => undefined);
    const error = await failure(transport({ timeoutMs: 300 }).request({ method: 'GET', url: `${server.url}/next` }));
    expect(error.kind).toBe('timeout');
    expect(error.message).toBe(`timeout: no answer from ${server.url} within 300ms (cloud.request_timeout)`);
  });

  it('arms one deadline per request on the injected clock and cancels it when the answer is complete', async () => {
    const server = await serve((_req, res) => sendJson(res, 200, { n: 1 }));
    const clock = createManualClock();
    const t = createHttpTransport({ timeoutMs: 5000, clock });
    transports.push(t);
    const pending = t.request({ method: 'GET', url: `${server.url}/x` });
    expect(clock.pending()).toBe(1);
    const response = await pending;
    expect(response.body).toBe('{"n":1}');
    expect(clock.pending()).toBe(0);
  });

  it('times out when the injected clock passes the deadline', async () => {
    let arrived!: () => void;
    const atServer = new Promise<void>((resolve) => (arrived = resolve));
    const server = await serve(() => arrived());
    const clock = createManualClock();
    const t = createHttpTransport({ timeoutMs: 2000, clock });
    transports.push(t);
    let settled = false;
    const pending = failure(t.request({ method: 'GET', url: `${server.url}/next` })).finally(() => (settled = true));
    await atServer;
    await clock.advance(1999);
    // a deadline that fired would have rejected by now: aborting settles within one turn of the event loop
    await new Promise((resolve) => setImmediate(resolve));
    expect(settled).toBe(false);
    await clock.advance(1);
    const error = await pending;
    expect(error.kind).toBe('timeout');
    expect(error.message).toBe(`timeout: no answer from ${server.url} within 2s (cloud.request_timeout)`);
  });

  it('waits for a slow answer that arrives within the timeout', async () => {
    const server = await serve((_req, res) => {
      setTimeout(() => {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.write('{"slow":');
        setTimeout(() => res.end('true}'), 100);
      }, 150);
    });
    const response = await transport({ timeoutMs: 5000 }).request({ method: 'GET', url: `${server.url}/next` });
    expect([response.status, response.body]).toEqual([200, '{"slow":true}']);
  });

  it('times out an answer whose body never finishes', async () => {
    const server = await serve((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': '100' });
      res.write('{"job_id":');
    });
    const error = await failure(transport({ timeoutMs: 300 }).request({ method: 'GET', url: `${server.url}/next` }));
    expect(error.kind).toBe('timeout');
    expect(error.message).toBe(`timeout: the answer did not finish from ${server.url} within 300ms (cloud.request_timeout)`);
  });

  it('stops reading a 50 MiB body at the cap without buffering the rest', async () => {
    const chunk = Buffer.alloc(64 * 1024, 0x61);
    const total = 50 * 1024 * 1024;
    let written = 0;
    let finished = false;
    let closed!: () => void;
    const serverClosed = new Promise<void>((resolve) => (closed = resolve));
    const server = await serve((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' }); // chunked: no length to refuse up front
      const pump = (): void => {
        while (written < total) {
          written += chunk.length;
          if (!res.write(chunk)) {
            res.once('drain', pump);
            return;
          }
        }
        finished = true;
        res.end();
      };
      res.on('close', closed);
      pump();
    });
    const cap = 1024 * 1024;
    const error = await failure(transport({ maxBodyBytes: cap }).request({ method: 'GET', url: `${server.url}/big` }));
    expect(error.kind).toBe('protocol');
    expect(error.message).toBe(`the server's answer from ${server.url} is larger than the 1 MiB limit; not reading it`);
    // the client closed the connection: the server could only push what the socket buffers hold beyond the cap, far from 50 MiB
    await serverClosed;
    expect(finished).toBe(false);
    expect(written).toBeLessThan(cap + 16 * 1024 * 1024);
  });

  it('refuses a declared Content-Length over the cap before reading', async () => {
    const server = await serve((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': String(50 * 1024 * 1024) });
      res.write('{');
    });
    const error = await failure(transport().request({ method: 'GET', url: `${server.url}/big` }));
    expect(error.kind).toBe('protocol');
    expect(error.message).toBe(`the server's answer from ${server.url} is larger than the 17 MiB limit; not reading it`);
  });

  it('follows up to 3 same-origin redirects', async () => {
    const server = await serve((req, res) => {
      const n = Number(req.url!.slice(1));
      if (n < 3) {
        res.writeHead(302, { location: `/${n + 1}` });
        res.end();
      } else sendJson(res, 200, { at: n });
    });
    const response = await transport().request({ method: 'GET', url: `${server.url}/0`, headers: { 'x-device-api-key': 'k' } });
    expect(response.status).toBe(200);
    expect(response.body).toBe('{"at":3}');
    expect(response.url).toBe(`${server.url}/3`);
    expect(server.seen.map((r) => [r.url, r.headers['x-device-api-key']])).toEqual([
      ['/0', 'k'],
      ['/1', 'k'],
      ['/2', 'k'],
      ['/3', 'k'],
    ]);
  });

  it('fails a redirect loop with "redirect loop" after 3 redirects', async () => {
    const server = await serve((_req, res) => {
      res.writeHead(301, { location: '/again' });
      res.end();
    });
    const error = await failure(transport().request({ method: 'GET', url: `${server.url}/start` }));
    expect(error.kind).toBe('protocol');
    expect(error.message).toBe(
      `redirect loop: ${server.url} redirected more than 3 times (last to ${server.url}/again); set cloud.api_url to the final address`,
    );
    expect(server.seen).toHaveLength(4);
  });

  it('never follows a redirect to another origin with the API key', async () => {
    const other = await serve((_req, res) => sendJson(res, 200, {}));
    const server = await serve((_req, res) => {
      res.writeHead(307, { location: `${other.url}/steal` });
      res.end();
    });
    const error = await failure(
      transport().request({ method: 'GET', url: `${server.url}/x`, headers: { 'x-device-api-key': 'secret-key-1' } }),
    );
    expect(error.kind).toBe('protocol');
    expect(error.message).toBe(
      `the server redirected ${server.url}/x to another origin (${other.url}); not following it with the API key: set cloud.api_url to the address the server wants`,
    );
    expect(error.message).not.toContain('secret-key-1');
    expect(other.seen).toHaveLength(0);
  });

  it('keeps method and body on 307/308 and refuses 303 for a PATCH', async () => {
    const server = await serve((req, res) => {
      if (req.url === '/old') {
        res.writeHead(308, { location: '/new' });
        res.end();
      } else if (req.url === '/see') {
        res.writeHead(303, { location: '/new' });
        res.end();
      } else sendJson(res, 200, { ok: 1 });
    });
    const t = transport();
    const moved = await t.request({ method: 'PATCH', url: `${server.url}/old`, json: { a: 1 } });
    expect(moved.status).toBe(200);
    expect(server.seen.map((r) => [r.method, r.url, r.body])).toEqual([
      ['PATCH', '/old', '{"a":1}'],
      ['PATCH', '/new', '{"a":1}'],
    ]);
    const error = await failure(t.request({ method: 'PATCH', url: `${server.url}/see`, json: { a: 1 } }));
    expect(error.kind).toBe('protocol');
    expect(error.message).toBe(
      'the server answered PATCH /see with 303 to /new, which would drop the request body; set cloud.api_url to the final address',
    );
  });

  it('says "connection refused" for a closed port', async () => {
    const server = await serve(() => undefined);
    const url = server.url;
    await server.close();
    servers.splice(0);
    const error = await failure(transport().request({ method: 'GET', url: `${url}/x` }));
    expect(error.kind).toBe('network');
    expect(error.message).toBe(
      `connection refused by ${new URL(url).host}: is the cloud API running there, and is the port in cloud.api_url right?`,
    );
  });

  it('says "DNS failure" for a name that does not resolve', async () => {
    const error = await failure(transport().request({ method: 'GET', url: 'http://no-such-host.invalid/x' }));
    expect(error.kind).toBe('network');
    expect(error.message).toMatch(
      /^DNS failure: cannot resolve no-such-host\.invalid \((ENOTFOUND|EAI_AGAIN)\); check cloud\.api_url and this device's network and DNS settings$/,
    );
  });

  it('reports a connection dropped mid-answer as a network error', async () => {
    const server = await serve((req, res) => {
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': '100' });
      // dropped once the head and the first bytes are on their way
      res.write('{"job', () => req.socket.destroy());
    });
    const error = await failure(transport().request({ method: 'GET', url: `${server.url}/x` }));
    expect(error.kind).toBe('network');
    expect(error.message).toMatch(new RegExp(`^the connection to ${server.url} closed before the answer was complete \\(`));
  });

  it('rejects with AbortedError, not a CloudError, when the caller aborts', async () => {
    const controller = new AbortController();
    // aborted while the server holds the request
    const server = await serve(() => controller.abort());
    const pending = transport().request({ method: 'GET', url: `${server.url}/x`, signal: controller.signal });
    await expect(pending).rejects.toBeInstanceOf(AbortedError);
  });
});
