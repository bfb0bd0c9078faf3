import { afterEach, describe, expect, it } from 'vitest';
import { createSystemClock } from '../../../src/clock/clock.js';
import { createHttpTransport, type HttpTransport } from '../../../src/cloud/http.js';
import { fetchSupervisorUuid } from '../../../src/cloud/supervisor.js';
import { sendJson, startTestServer, type TestServer } from './test-server.js';

const servers: TestServer[] = [];
const transports: HttpTransport[] = [];
afterEach(async () => {
  for (const t of transports.splice(0)) t.close();
  for (const s of servers.splice(0)) await s.close();
});

async function probe(handler: Parameters<typeof startTestServer>[0], timeoutMs?: number) {
  const server = await startTestServer(handler);
  servers.push(server);
  const transport = createHttpTransport({ timeoutMs: 30_000, clock: createSystemClock() });
  transports.push(transport);
  return { server, answer: await fetchSupervisorUuid({ supervisorUrl: server.url, transport, ...(timeoutMs ? { timeoutMs } : {}) }) };
}

describe('fetchSupervisorUuid', () => {
  it('reads the uuid from GET /v2/device', async () => {
    const { server, answer } = await probe((_req, res) => sendJson(res, 200, { uuid: 'abc123', status: 'Idle' }));
    expect(answer).toEqual({ uuid: 'abc123' });
    expect(server.seen.map((r) => [r.method, r.url])).toEqual([['GET', '/v2/device']]);
  });

  it('gives a reason, never an exception, for a non-200, no uuid, or no answer in time', async () => {
    const missing = await probe((_req, res) => sendJson(res, 401, { error: 'Unauthorized' }));
    expect(missing.answer).toEqual({ uuid: null, reason: `the supervisor at ${missing.server.url}/v2/device answered 401` });
    const empty = await probe((_req, res) => sendJson(res, 200, { status: 'Idle' }));
    expect(empty.answer).toEqual({ uuid: null, reason: `the supervisor at ${empty.server.url}/v2/device answered without a uuid` });
    const silent = await probe(() => undefined, 200);
    expect(silent.answer).toEqual({
      uuid: null,
      reason: `the supervisor at ${silent.server.url}/v2/device did not answer: timeout: no answer from ${silent.server.url} within 200ms`,
    });
  });

  it('takes no uuid that is not one URL path segment (it would address another route)', async () => {
    const { server, answer } = await probe((_req, res) => sendJson(res, 200, { uuid: '..', device: { uuid: 'a/b' } }));
    expect(answer).toEqual({ uuid: null, reason: `the supervisor at ${server.url}/v2/device answered without a uuid` });
  });

  it('is disabled by an empty supervisor_url', async () => {
    const transport = createHttpTransport({ timeoutMs: 1000, clock: createSystemClock() });
    transports.push(transport);
    expect(await fetchSupervisorUuid({ supervisorUrl: '', transport })).toEqual({
      uuid: null,
      reason: 'the supervisor lookup is disabled (device.supervisor_url is empty)',
    });
  });
});
