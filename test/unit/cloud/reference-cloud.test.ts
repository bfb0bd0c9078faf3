// The cloud module against the team's reference cloud (a real implementation of
// test/cloud/CONTRACT.md): registration, polling and reporting for both generations, and
// the reference cloud's broken answers.
import { afterEach, describe, expect, it } from 'vitest';
import { createSystemClock } from '../../../src/clock/clock.js';
import { CloudError } from '../../../src/cloud/cloud-error.js';
import { createCloudClient } from '../../../src/cloud/client.js';
import { createHttpTransport, type HttpTransport } from '../../../src/cloud/http.js';
import { registerDevice, RegistrationError } from '../../../src/cloud/register.js';
import type { StatusReport } from '../../../src/contract/types.js';
import { startReferenceCloud, type FaultSpec, type ReferenceCloud } from '../../cloud/reference-cloud.js';
import { createCaptureLog } from './capture-log.js';

const PROVISIONING_KEY = 'fleet-provisioning-key-42';
const clouds: ReferenceCloud[] = [];
const transports: HttpTransport[] = [];

afterEach(async () => {
  for (const t of transports.splice(0)) t.close();
  for (const c of clouds.splice(0)) await c.close();
});

async function start(options: Parameters<typeof startReferenceCloud>[0]): Promise<ReferenceCloud> {
  const cloud = await startReferenceCloud({ provisioningKeys: [{ key: PROVISIONING_KEY }], ...options });
  clouds.push(cloud);
  return cloud;
}

function transport(timeoutMs = 5000): HttpTransport {
  const t = createHttpTransport({ timeoutMs, clock: createSystemClock() });
  transports.push(t);
  return t;
}

function register(cloud: ReferenceCloud, provisioningKey = PROVISIONING_KEY) {
  return registerDevice({
    apiUrl: cloud.url,
    generation: 'auto',
    provisioningKey,
    deviceName: 'pi-1',
    deviceType: 'Raspberry Pi 5 Model B Rev 1.0',
    macAddress: 'd8:3a:dd:00:00:01',
    osVersion: 'Debian GNU/Linux 12 (bookworm)',
    agentVersion: '0.1.0',
    transport: transport(),
    log: createCaptureLog(),
  });
}

function report(status: StatusReport['status']): StatusReport {
  return {
    status,
    exit_code: status === 'IN_PROGRESS' ? null : 0,
    stdout: 'hello\n',
    stderr: '',
    reason: status === 'IN_PROGRESS' ? 'started' : '1 of 1 steps succeeded',
    executed_steps: status === 'IN_PROGRESS' ? 0 : 1,
    failed_step: null,
    status_details: { agent: 'cloudjobs' },
  };
}

for (const generation of ['devices', 'agents'] as const) {
  describe(`reference cloud, generation ${generation}`, () => {
    it('registers, polls with the new key, takes a job and reports it', async () => {
      const cloud = await start({ generation });
      const identity = await register(cloud);
      expect(identity.generation).toBe(generation);
      const device = cloud.getDevice(identity.uuid);
      expect(device).toMatchObject({ hasApiKey: true, registrationComplete: true, deviceName: 'pi-1', hasPublicKey: generation === 'agents' });

      const client = createCloudClient({
        apiUrl: cloud.url,
        generation: 'auto',
        uuid: identity.uuid,
        apiKey: identity.apiKey,
        transport: transport(),
        log: createCaptureLog(),
      });
      expect(await client.nextJob()).toEqual({ kind: 'none' });
      expect(client.generation()).toBe(generation);
      const job = cloud.queueJob(identity.uuid, { name: 'Hello', document: { version: '1.0', steps: [] }, timeoutSeconds: 60 });
      const answer = await client.nextJob();
      expect(answer).toEqual({
        kind: 'job',
        offer: { jobId: job.job_id, jobName: 'Hello', timeoutSeconds: 60, createdAt: expect.any(String), document: { version: '1.0', steps: [] } },
      });
      expect(await client.sendStatus(job.job_id, report('IN_PROGRESS'))).toBe('accepted');
      expect(await client.sendStatus(job.job_id, report('SUCCEEDED'))).toBe('accepted');
      expect(cloud.patches(job.job_id).map((p) => [p.answer, p.body])).toEqual([
        [200, report('IN_PROGRESS')],
        [200, report('SUCCEEDED')],
      ]);
      expect(cloud.getJob(job.job_id)!.status).toBe('SUCCEEDED');
      expect(await client.nextJob()).toEqual({ kind: 'none' });
    });

    it('adopts a pre-registered uuid', async () => {
      const cloud = await start({ generation });
      cloud.preRegisterUuid('aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee');
      const identity = await register(cloud);
      expect(identity.uuid).toBe('aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee');
      expect(cloud.getDevice(identity.uuid)!.hasApiKey).toBe(true);
    });

    it('explains a wrong provisioning key', async () => {
      const cloud = await start({ generation });
      const error = await register(cloud, 'not-the-key-123').then(
        () => null,
        (e: unknown) => e,
      );
      expect(error).toBeInstanceOf(RegistrationError);
      expect((error as RegistrationError).kind).toBe('provisioning-key');
      expect((error as RegistrationError).status).toBe(401);
    });

    it('tells canceled, deleted and unknown-device answers apart', async () => {
      const cloud = await start({ generation, cancelMode: '410', devices: [{ uuid: 'dev-1', apiKey: 'k'.repeat(64) }] });
      const client = createCloudClient({
        apiUrl: cloud.url,
        generation,
        uuid: 'dev-1',
        apiKey: 'k'.repeat(64),
        transport: transport(),
        log: createCaptureLog(),
      });
      const canceled = cloud.queueJob('dev-1', { name: 'c', document: {} });
      const deleted = cloud.queueJob('dev-1', { name: 'd', document: {} });
      cloud.cancelJob(canceled.job_id);
      expect(await client.sendStatus(canceled.job_id, report('SUCCEEDED'))).toBe('canceled');
      cloud.deleteJob(deleted.job_id);
      expect(await client.sendStatus(deleted.job_id, report('SUCCEEDED'))).toBe('gone');
      const stranger = createCloudClient({
        apiUrl: cloud.url,
        generation,
        uuid: 'dev-unknown',
        apiKey: 'x'.repeat(64),
        transport: transport(),
        log: createCaptureLog(),
      });
      const error = await stranger.nextJob().then(
        () => null,
        (e: unknown) => e,
      );
      expect(error).toBeInstanceOf(CloudError);
      expect(['device-unknown', 'auth']).toContain((error as CloudError).kind);
    });
  });
}

describe('reference cloud faults', () => {
  const cases: [FaultSpec, string, RegExp][] = [
    [{ kind: 'html' }, 'server', /^the server failed to answer GET \/devices\/dev-1\/jobs\/next \(502: an HTML page/],
    [{ kind: 'html', status: 200 }, 'protocol', /^the server answered 200 with text\/html instead of JSON/],
    [{ kind: 'truncated-json' }, 'protocol', /^the server answered 200 with JSON that does not parse/],
    [{ kind: 'wrong-shape' }, 'protocol', /^the server answered 200 with /],
    [{ kind: 'job-without-id' }, 'protocol', /^the server answered 200 with a job without job_id/],
    [{ kind: 'huge' }, 'protocol', /is larger than the 17 MiB limit; not reading it$/],
    [{ kind: 'redirect-loop', times: 'always' }, 'protocol', /^redirect loop: /],
    [{ kind: 'hang' }, 'timeout', /^timeout: no answer from /],
    [{ kind: 'drop' }, 'network', /^the connection to .* closed before the answer was complete|^request to /],
    [{ kind: 'rate-limit', retryAfterSeconds: 30 }, 'rate-limited', /^rate limited by the server \(429/],
    [{ kind: 'rate-limit', retryAfterSeconds: 30, retryAfterForm: 'date' }, 'rate-limited', /^rate limited by the server \(429/],
    [{ kind: 'status', status: 503, retryAfterSeconds: 5 }, 'server', /^the server is unavailable \(503/],
  ];
  for (const [fault, kind, message] of cases) {
    it(`${fault.kind}${fault.retryAfterForm ? ` (${fault.retryAfterForm})` : ''} -> ${kind}`, async () => {
      const cloud = await start({ generation: 'devices', devices: [{ uuid: 'dev-1', apiKey: 'k'.repeat(64) }] });
      cloud.queueJob('dev-1', { name: 'j', document: { version: '1.0', steps: [] } });
      cloud.injectFault(fault);
      const client = createCloudClient({
        apiUrl: cloud.url,
        generation: 'devices',
        uuid: 'dev-1',
        apiKey: 'k'.repeat(64),
        transport: transport(fault.kind === 'hang' ? 300 : 5000),
        log: createCaptureLog(),
      });
      const error = await client.nextJob().then(
        () => null,
        (e: unknown) => e,
      );
      expect(error).toBeInstanceOf(CloudError);
      expect((error as CloudError).kind).toBe(kind);
      expect((error as CloudError).message).toMatch(message);
      if (fault.kind === 'rate-limit') {
        const wait = (error as CloudError).retryAfterMs!;
        expect(wait).toBeGreaterThanOrEqual(fault.retryAfterForm === 'date' ? 29_000 : 30_000);
        expect(wait).toBeLessThanOrEqual(30_000);
      }
      if (fault.kind === 'status') expect((error as CloudError).retryAfterMs).toBe(5000);
      // the client keeps working once the fault is gone
      cloud.clearFaults();
      if (fault.kind !== 'huge' && fault.kind !== 'hang' && fault.kind !== 'drop') {
        expect((await client.nextJob()).kind).toBe('job');
      }
    });
  }
});
