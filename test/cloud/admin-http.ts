// The admin side of the reference cloud over HTTP under /admin, for the demo,
// the nspawn test and benchmarks that run the server as a separate process.
// Every operation maps onto a ReferenceCloud method.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AdminHooks, ReferenceCloud } from './reference-cloud.js';
import type { CancelMode } from './cloud-core.js';
import { checkFaultSpec, type FaultSpec } from './faults.js';
import { asRecord, readBody, writeJson } from './http-io.js';

const CANCEL_MODES: readonly CancelMode[] = ['off', '409', '410', '200-canceled'];

/**
 * Handles one /admin request. Routes (JSON in and out):
 *   GET    /health                         {"ok":true,"generation"}
 *   GET    /devices | /devices/:uuid       device views
 *   POST   /devices                        {uuid, apiKey?, active?, registrationComplete?}
 *   PATCH  /devices/:uuid                  {active?, registrationComplete?}
 *   POST   /devices/:uuid/jobs             {name, document, timeout_seconds?, document_as_string?, job_id?, count?, jsonb?}
 *   GET    /jobs[?uuid=]                   {jobs:[...]}     GET /jobs/:id   the row
 *   POST   /jobs/:id/cancel                the row          DELETE /jobs/:id  204
 *   GET    /patches[?jobId=&since=SEQ]     {patches:[...]}
 *   GET    /requests                       {counts, requests}   GET /counts  {counts}
 *   POST   /faults                         FaultSpec -> {id}    GET /faults  DELETE /faults
 *   PUT    /cancel-mode {mode}   PUT /no-job-answer {answer}   PUT /certificate {cert,key}
 *   POST   /provisioning-keys {key, expired?}   POST /pre-register {uuid}
 *   POST   /down {ms}   (answers, closes the listener, listens again after ms)
 *   POST   /reset       GET /snapshot
 */
export async function handleAdminRequest(
  cloud: ReferenceCloud,
  hooks: AdminHooks,
  req: IncomingMessage,
  res: ServerResponse,
  path: string,
  url: string,
): Promise<void> {
  const method = req.method ?? 'GET';
  const query = new URL(url, 'http://admin').searchParams;
  const body = await readBody(req, 64 * 1024 * 1024);
  let input: Record<string, unknown> = {};
  if (body.ok && body.raw.length > 0) {
    try {
      input = asRecord(JSON.parse(body.raw.toString('utf8'))) ?? {};
    } catch {
      writeJson(res, 400, { error: 'admin: body is not JSON' });
      return;
    }
  }
  const parts = path.split('/').filter((p) => p !== '').map(decodeURIComponent);
  const [a, b, c] = parts;
  const bad = (message: string): void => writeJson(res, 400, { error: `admin: ${message}` });
  const notFound = (message: string): void => writeJson(res, 404, { error: `admin: ${message}` });
  try {
    if (method === 'GET' && a === 'health') return writeJson(res, 200, { ok: true, generation: cloud.generation, url: cloud.url });
    if (a === 'devices') {
      if (method === 'GET' && b === undefined) return writeJson(res, 200, { devices: cloud.listDevices() });
      if (method === 'GET' && b !== undefined && c === undefined) {
        const device = cloud.getDevice(b);
        return device ? writeJson(res, 200, device) : notFound(`no device ${b}`);
      }
      if (method === 'POST' && b === undefined) {
        if (typeof input.uuid !== 'string') return bad('uuid is required');
        cloud.addDevice({
          uuid: input.uuid,
          ...(typeof input.apiKey === 'string' ? { apiKey: input.apiKey } : {}),
          ...(typeof input.active === 'boolean' ? { active: input.active } : {}),
          ...(typeof input.registrationComplete === 'boolean' ? { registrationComplete: input.registrationComplete } : {}),
        });
        return writeJson(res, 201, cloud.getDevice(input.uuid));
      }
      if (method === 'PATCH' && b !== undefined && c === undefined) {
        if (!cloud.getDevice(b)) return notFound(`no device ${b}`);
        if (typeof input.active === 'boolean') cloud.setDeviceActive(b, input.active);
        if (typeof input.registrationComplete === 'boolean') cloud.setRegistrationComplete(b, input.registrationComplete);
        return writeJson(res, 200, cloud.getDevice(b));
      }
      if (method === 'POST' && b !== undefined && c === 'jobs') {
        if (typeof input.name !== 'string' || input.document === undefined) return bad('name and document are required');
        const timeout = input.timeout_seconds;
        if (timeout !== undefined && timeout !== null && !Number.isInteger(timeout)) return bad('timeout_seconds must be an integer or null');
        const job = {
          name: input.name,
          document: input.document,
          timeoutSeconds: (timeout as number | null | undefined) ?? null,
          documentAsString: input.document_as_string === true,
          jsonb: input.jsonb === true,
          ...(typeof input.job_id === 'string' ? { jobId: input.job_id } : {}),
        };
        if (input.count !== undefined) {
          if (!Number.isInteger(input.count) || (input.count as number) < 1) return bad('count must be a positive integer');
          return writeJson(res, 201, { jobs: cloud.queueJobs(b, input.count as number, job) });
        }
        return writeJson(res, 201, cloud.queueJob(b, job));
      }
    }
    if (a === 'jobs') {
      if (method === 'GET' && b === undefined) return writeJson(res, 200, { jobs: cloud.listJobs(query.get('uuid') ?? undefined) });
      if (b !== undefined && !cloud.getJob(b)) return notFound(`no job ${b}`);
      if (method === 'GET' && b !== undefined && c === undefined) return writeJson(res, 200, cloud.getJob(b));
      if (method === 'POST' && b !== undefined && c === 'cancel') return writeJson(res, 200, cloud.cancelJob(b));
      if (method === 'DELETE' && b !== undefined && c === undefined) {
        cloud.deleteJob(b);
        res.writeHead(204);
        res.end();
        return;
      }
    }
    if (method === 'GET' && a === 'patches') {
      const since = Number(query.get('since') ?? '0');
      const jobId = query.get('jobId') ?? undefined;
      return writeJson(res, 200, { patches: cloud.patches(jobId).filter((p) => p.seq > since) });
    }
    if (method === 'GET' && a === 'requests') return writeJson(res, 200, { counts: cloud.requestCounts(), requests: cloud.requests() });
    if (method === 'GET' && a === 'counts') return writeJson(res, 200, { counts: cloud.requestCounts() });
    if (a === 'faults') {
      if (method === 'GET') return writeJson(res, 200, { faults: cloud.listFaults() });
      if (method === 'DELETE') {
        cloud.clearFaults();
        res.writeHead(204);
        res.end();
        return;
      }
      if (method === 'POST') {
        const problem = checkFaultSpec(input);
        if (problem !== null) return bad(problem);
        return writeJson(res, 201, { id: cloud.injectFault(input as unknown as FaultSpec) });
      }
    }
    if (method === 'PUT' && a === 'cancel-mode') {
      if (!CANCEL_MODES.includes(input.mode as CancelMode)) return bad(`mode must be one of ${CANCEL_MODES.join(', ')}`);
      cloud.setCancelMode(input.mode as CancelMode);
      return writeJson(res, 200, { mode: input.mode });
    }
    if (method === 'PUT' && a === 'no-job-answer') {
      if (input.answer !== 'contract' && input.answer !== '204') return bad('answer must be "contract" or "204"');
      cloud.setNoJobAnswer(input.answer);
      return writeJson(res, 200, { answer: input.answer });
    }
    if (method === 'PUT' && a === 'certificate') {
      if (typeof input.cert !== 'string' || typeof input.key !== 'string') return bad('cert and key (PEM) are required');
      cloud.setCertificate(input.cert, input.key);
      return writeJson(res, 200, { ok: true });
    }
    if (method === 'POST' && a === 'provisioning-keys') {
      if (typeof input.key !== 'string') return bad('key is required');
      cloud.addProvisioningKey({ key: input.key, expired: input.expired === true });
      return writeJson(res, 201, { key: input.key, expired: input.expired === true });
    }
    if (method === 'POST' && a === 'pre-register') {
      if (typeof input.uuid !== 'string') return bad('uuid is required');
      cloud.preRegisterUuid(input.uuid);
      return writeJson(res, 201, { uuid: input.uuid });
    }
    if (method === 'POST' && a === 'down') {
      const ms = input.ms;
      if (!Number.isInteger(ms) || (ms as number) < 0) return bad('ms (how long to stay down) must be a non-negative integer');
      res.writeHead(202, { 'Content-Type': 'application/json', Connection: 'close' });
      res.end(JSON.stringify({ down: true, ms }), () => {
        cloud
          .down()
          .then(() => hooks.scheduleUp(ms as number))
          .catch(() => undefined);
      });
      return;
    }
    if (method === 'POST' && a === 'reset') {
      cloud.reset();
      return writeJson(res, 200, { ok: true });
    }
    if (method === 'GET' && a === 'snapshot') return writeJson(res, 200, cloud.snapshot());
    notFound(`no admin route ${method} ${path}`);
  } catch (error) {
    bad(error instanceof Error ? error.message : String(error));
  }
}
