// The device job routes of test/cloud/CONTRACT.md: GET .../jobs/next and
// PATCH .../jobs/{jobId}/status, behind the device API key check.
import type { JobStatus } from '../../src/contract/types.js';
import { answerJson, mayAnswer, type CloudCore, type RouteContext } from './cloud-core.js';
import { hashApiKey, takeNextJob, type DeviceRecord, type JobRow } from './cloud-state.js';
import { asRecord, parseJsonBody, readBody } from './http-io.js';
import { jsonbText } from './jsonb.js';

const STATUSES: ReadonlySet<string> = new Set(['QUEUED', 'IN_PROGRESS', 'SUCCEEDED', 'FAILED', 'TIMED_OUT', 'REJECTED', 'CANCELED']);
const FINAL: ReadonlySet<string> = new Set(['SUCCEEDED', 'FAILED', 'TIMED_OUT', 'REJECTED', 'CANCELED']);

/** Reads the device API key from X-Device-API-Key or Authorization: Bearer, as the server does. */
export function readDeviceKey(ctx: RouteContext): string | null {
  const header = ctx.req.headers['x-device-api-key'];
  if (typeof header === 'string' && header !== '') {
    ctx.record.auth = 'x-device-api-key';
    return header;
  }
  const authorization = ctx.req.headers.authorization;
  if (typeof authorization === 'string' && authorization !== '') {
    ctx.record.auth = 'bearer';
    const key = authorization.replace('Bearer ', '');
    return key === '' ? null : key;
  }
  return null;
}

/**
 * Checks the device API key the way the server's deviceAuth middleware does
 * (key present, device exists, active, key matches, registration complete).
 * Answers the error itself and returns null on failure.
 */
export function authenticateDevice(core: CloudCore, ctx: RouteContext, uuid: string): DeviceRecord | null {
  const key = readDeviceKey(ctx);
  if (key === null) {
    answerJson(ctx, 401, {
      error: 'Unauthorized',
      message: 'Device API key required. Send in X-Device-API-Key header or Authorization: Bearer header.',
    });
    return null;
  }
  const device = core.state.devices.get(uuid);
  if (!device) {
    answerJson(ctx, 404, { error: 'Not Found', message: 'Device not found' });
    return null;
  }
  if (!device.active) {
    answerJson(ctx, 403, { error: 'Forbidden', message: 'Device is inactive. Contact administrator.' });
    return null;
  }
  const hash = hashApiKey(key);
  if (device.apiKeyHash === null || device.apiKeyHash !== hash) {
    answerJson(ctx, 401, { error: 'Unauthorized', message: 'Invalid device API key' });
    return null;
  }
  if (!admitDeviceRequest(core, ctx, hash)) return null;
  if (!device.registrationComplete) {
    answerJson(ctx, 403, {
      error: 'Forbidden',
      message: 'Device registration incomplete. Complete the key exchange before calling the API.',
    });
    return null;
  }
  return device;
}

// The per-key rate limit (off unless configured): 429 with retryAfter and a Retry-After header.
function admitDeviceRequest(core: CloudCore, ctx: RouteContext, keyHash: string): boolean {
  const limit = core.deviceRateLimit;
  if (limit === null) return true;
  const now = core.now();
  let entry = core.state.deviceRequests.get(keyHash);
  if (!entry || now - entry.windowStart >= limit.windowMs) {
    entry = { windowStart: now, count: 0 };
    core.state.deviceRequests.set(keyHash, entry);
  }
  entry.count += 1;
  if (entry.count <= limit.max) return true;
  const retryAfter = Math.max(1, Math.ceil((entry.windowStart + limit.windowMs - now) / 1000));
  answerJson(
    ctx,
    429,
    { error: 'Too many requests', message: `Rate limit exceeded: ${limit.max} requests per ${limit.windowMs / 1000}s`, retryAfter },
    { 'Retry-After': String(retryAfter) },
  );
  return false;
}

/** GET .../jobs/next: hands out the oldest queued job and marks it IN_PROGRESS. */
export function handleNextJob(core: CloudCore, ctx: RouteContext, uuid: string): void {
  if (!authenticateDevice(core, ctx, uuid)) return;
  const row = takeNextJob(core.state, uuid, core.now());
  if (!row) {
    if (core.noJobAnswer === '204') {
      if (!mayAnswer(ctx, 204)) return;
      ctx.res.writeHead(204);
      ctx.res.end();
    } else if (core.generation === 'agents') {
      answerJson(ctx, 404, { error: 'No pending jobs' });
    } else {
      answerJson(ctx, 200, { message: 'No pending jobs' });
    }
    return;
  }
  core.onChange();
  const offer: Record<string, unknown> = { job_id: row.job_id, job_name: row.job_name };
  // Newer servers always send 3600; older ones omit the field when the job has none.
  if (core.generation === 'agents') offer.timeout_seconds = row.timeout_seconds ?? 3600;
  else if (row.timeout_seconds !== null) offer.timeout_seconds = row.timeout_seconds;
  offer.created_at = row.created_at;
  offer.job_document = row.document_as_string ? (row.jsonb ? jsonbText(row.job_document) : JSON.stringify(row.job_document)) : row.job_document;
  answerJson(ctx, 200, offer);
}

/** PATCH .../jobs/{jobId}/status: records the body, then overwrites every column of the row. */
export async function handleStatusPatch(core: CloudCore, ctx: RouteContext, uuid: string, jobId: string): Promise<void> {
  const body = await readBody(ctx.req, core.maxBodyBytes);
  const at = core.now();
  const patch = {
    seq: core.state.nextPatchSeq++,
    at,
    receivedAt: new Date(at).toISOString(),
    uuid,
    jobId,
    path: ctx.path,
    rawBody: body.ok ? body.raw.toString('utf8') : '',
    body: null as unknown,
    answer: 0,
    answerLost: ctx.loseAnswer,
  };
  core.state.patches.push(patch);
  const finish = (status: number, answer: unknown): void => {
    patch.answer = status;
    core.onChange();
    answerJson(ctx, status, answer);
  };
  if (!body.ok) {
    if (body.reason === 'aborted') {
      patch.answer = 0;
      return;
    }
    finish(413, { error: 'Payload Too Large', message: 'request entity too large' });
    return;
  }
  const parsed = parseJsonBody(ctx.req, body.raw);
  if (parsed.ok) patch.body = parsed.value;
  if (!authenticateDevice(core, ctx, uuid)) {
    patch.answer = ctx.record.status;
    core.onChange();
    return;
  }
  if (!parsed.ok) {
    finish(400, { error: 'Bad Request', message: 'Invalid JSON body' });
    return;
  }
  const fields = asRecord(parsed.value) ?? {};
  if (fields.status === undefined || fields.status === null || fields.status === '') {
    finish(400, { error: 'status is required' });
    return;
  }
  const row = core.state.jobs.get(jobId);
  if (!row || row.device_uuid !== uuid) {
    finish(404, { error: 'Job status not found' });
    return;
  }
  const problem = checkColumns(fields);
  if (problem !== null) {
    // What the real server answers when the database rejects the UPDATE.
    finish(500, { error: 'Failed to update job status', message: problem });
    return;
  }
  const status = fields.status as JobStatus;
  if (row.canceled_by_server && status !== 'CANCELED') {
    if (core.cancelMode === '409') {
      finish(409, { error: 'Conflict', message: 'Job was canceled by the server' });
      return;
    }
    if (core.cancelMode === '410') {
      finish(410, { error: 'Gone', message: 'Job was canceled by the server' });
      return;
    }
  }
  applyPatch(row, fields, at, core.cancelMode === '200-canceled' && row.canceled_by_server);
  finish(200, rowAnswer(row));
}

// Mirrors the column types of the job status table; a violation is a database error.
function checkColumns(fields: Record<string, unknown>): string | null {
  if (typeof fields.status !== 'string' || !STATUSES.has(fields.status)) {
    return `invalid input value for enum job_status: ${JSON.stringify(fields.status)}`;
  }
  for (const key of ['exit_code', 'executed_steps'] as const) {
    const v = fields[key];
    if (v !== undefined && v !== null && !(Number.isInteger(v) && Math.abs(v as number) <= 2147483647)) {
      return `invalid input syntax for type integer: ${JSON.stringify(v)} (column ${key})`;
    }
  }
  for (const key of ['stdout', 'stderr', 'reason', 'failed_step'] as const) {
    const v = fields[key];
    if (v !== undefined && v !== null && typeof v !== 'string') {
      return `column ${key} is text, got ${JSON.stringify(v).slice(0, 80)}`;
    }
  }
  if (typeof fields.failed_step === 'string' && fields.failed_step.length > 255) {
    return 'value too long for type character varying(255) (column failed_step)';
  }
  const details = fields.status_details;
  if (details !== undefined && details !== null && asRecord(details) === null) {
    return 'column status_details must be a JSON object';
  }
  return null;
}

// Every column is overwritten; a field left out becomes null (test/cloud/CONTRACT.md "Status update").
function applyPatch(row: JobRow, fields: Record<string, unknown>, at: number, keepCanceled: boolean): void {
  const iso = new Date(at).toISOString();
  row.status = keepCanceled ? 'CANCELED' : (fields.status as JobStatus);
  row.exit_code = fields.exit_code ?? null;
  row.stdout = fields.stdout ?? null;
  row.stderr = fields.stderr ?? null;
  row.reason = fields.reason ?? null;
  row.executed_steps = fields.executed_steps ?? null;
  row.failed_step = fields.failed_step ?? null;
  row.status_details = fields.status_details ?? null;
  row.updated_at = iso;
  row.patch_count += 1;
  if (row.status === 'IN_PROGRESS' && row.started_at === null) row.started_at = iso;
  row.completed_at = FINAL.has(row.status) ? iso : null;
}

// The updated row as the server answers it: the table's columns, not our bookkeeping.
function rowAnswer(row: JobRow): Record<string, unknown> {
  const { document_as_string: _s, canceled_by_server: _c, patch_count: _p, jsonb: _j, ...columns } = row;
  return columns;
}
