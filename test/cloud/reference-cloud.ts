// A small but real implementation of the device side of test/cloud/CONTRACT.md, with an
// admin side (in-process methods and HTTP under /admin) for tests, the demo
// and benchmarks. Loopback only; plain node:http; in-memory tables.
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { Socket } from 'node:net';
import { FINAL_STATUSES, type ApiGeneration, type JobStatus } from '../../src/contract/types.js';
import { handleAdminRequest } from './admin-http.js';
import { answerUnknownRoute, type CancelMode, type CloudCore, type PushOptions, type RouteContext } from './cloud-core.js';
import {
  addDevice,
  copyJobRow,
  createCloudState,
  queueJob as insertJob,
  type DeviceSeed,
  type JobRow,
  type PatchRecord,
  type ProvisioningKeySeed,
  type QueueJobInput,
  type RequestRecord,
} from './cloud-state.js';
import { handleNextJob, handleStatusPatch } from './device-api.js';
import { activateFault, answerWithFault, checkFaultSpec, takeFault, type ActiveFault, type FaultSpec } from './faults.js';
import { notificationPayload, notificationTopic } from './push-notify.js';
import { handleAgentRegister, handleDeviceRegister, handleKeyExchange, handleNewChallenge } from './registration.js';
import { waitFor } from './wait-for.js';

export type { CancelMode, PushOptions } from './cloud-core.js';
export type { DeviceSeed, JobRow, PatchRecord, ProvisioningKeySeed, QueueJobInput, RequestRecord } from './cloud-state.js';
export type { FaultKind, FaultSpec } from './faults.js';

/** Certificate and key the server presents over HTTPS; `ca` + `requestCert` turn on mTLS. */
export interface CloudTlsOptions {
  cert: string;
  key: string;
  /** CA that client certificates must chain to (mTLS). */
  ca?: string;
  /** Require a client certificate signed by `ca`. @default false */
  requestCert?: boolean;
}

/** Options of startReferenceCloud. */
export interface ReferenceCloudOptions {
  /** Which path generation the server speaks. @default 'devices' */
  generation?: ApiGeneration;
  /** TCP port on 127.0.0.1. @default 0 (ephemeral) */
  port?: number;
  /** Prefix of every device-side path. @default '/api/v1' */
  basePath?: string;
  devices?: DeviceSeed[];
  provisioningKeys?: ProvisioningKeySeed[];
  /** Serve HTTPS with this certificate. */
  tls?: CloudTlsOptions;
  /** EXTENSION: how a PATCH for a job canceled through the admin API is answered. @default 'off' */
  cancelMode?: CancelMode;
  /** 'contract': each generation's own "no job" answer; '204': No Content. @default 'contract' */
  noJobAnswer?: 'contract' | '204';
  /** A CA PEM put into registration answers as api.tlsConfig.caCert. */
  registrationCaCert?: string;
  /** Registration attempts allowed per IP per window. @default { max: 5, windowMs: 900000 } */
  registrationLimit?: { max: number; windowMs: number };
  /** Device API requests allowed per key per window, e.g. { max: 300, windowMs: 60000 } like the real server. @default no limit */
  deviceRateLimit?: { max: number; windowMs: number };
  /** Lifetime of an Ed25519 challenge. @default 300000 */
  challengeTtlMs?: number;
  /** Largest request body accepted. @default 16 MiB */
  maxBodyBytes?: number;
  /** Keep a log of every device-side request (counts are always kept). @default true */
  recordRequests?: boolean;
  /** The server's clock (registration window, challenge expiry, timestamps). @default Date.now */
  now?: () => number;
  /** Called after every change of devices, jobs or PATCHes. */
  onChange?: () => void;
  /** Publish job notifications over MQTT as the real servers do (and hand out broker credentials at registration). */
  push?: PushOptions;
}

/** A job list entry: the row as the server holds it after the last PATCH. */
export type JobView = JobRow;

/** A running reference cloud. */
export interface ReferenceCloud {
  /** API base URL to configure the agent with, e.g. http://127.0.0.1:41234/api/v1 */
  readonly url: string;
  /** Origin without base path, e.g. http://127.0.0.1:41234 */
  readonly origin: string;
  /** Base of the admin HTTP API, e.g. http://127.0.0.1:41234/admin */
  readonly adminUrl: string;
  readonly port: number;
  readonly generation: ApiGeneration;

  addDevice(seed: DeviceSeed): void;
  setDeviceActive(uuid: string, active: boolean): void;
  setRegistrationComplete(uuid: string, complete: boolean): void;
  /** Device state as the admin sees it (no key material but whether one is set). */
  getDevice(uuid: string): DeviceView | undefined;
  listDevices(): DeviceView[];
  addProvisioningKey(seed: ProvisioningKeySeed): void;
  /** The next registration answers with this uuid (a device pre-registered on the dashboard). */
  preRegisterUuid(uuid: string): void;

  queueJob(uuid: string, input: QueueJobInput): JobView;
  queueJobs(uuid: string, count: number, input: QueueJobInput): JobView[];
  /** Publishes the notification of an existing job again (duplicates and floods); false without push. */
  notify(jobId: string): boolean;
  /** Notifications published so far. */
  notificationsSent(): number;
  listJobs(uuid?: string): JobView[];
  getJob(jobId: string): JobView | undefined;
  /** Cancels a job on the server (status CANCELED; drives the cancel extension). */
  cancelJob(jobId: string): JobView;
  /** Deletes a job: later PATCHes get 404 "Job status not found". */
  deleteJob(jobId: string): void;
  setCancelMode(mode: CancelMode): void;
  setNoJobAnswer(answer: 'contract' | '204'): void;

  /** Every status PATCH received, in order, optionally for one job. */
  patches(jobId?: string): PatchRecord[];
  /** Logged device-side requests in order (empty when recordRequests is off). */
  requests(): RequestRecord[];
  /** Requests per route template, e.g. { "GET /devices/:uuid/jobs/next": 3 }. */
  requestCounts(): Record<string, number>;

  /** Installs a fault; returns its id. */
  injectFault(spec: FaultSpec): number;
  clearFaults(): void;
  /** Faults still installed. */
  listFaults(): { id: number; spec: FaultSpec; remaining: number | 'always'; used: number }[];

  /** Presents another certificate for new TLS connections. */
  setCertificate(cert: string, key: string): void;

  /** Closes the listener and every connection; `up()` listens again on the same port. */
  down(): Promise<void>;
  up(): Promise<void>;
  isUp(): boolean;
  /** Back to the state right after start: seeds only, no jobs, PATCHes, requests or faults. */
  reset(): void;
  /** Resolves once `predicate(this)` is truthy (polling); rejects after timeoutMs naming `what`. */
  waitFor<T>(predicate: (cloud: ReferenceCloud) => T | undefined | null | false, timeoutMs?: number, what?: string): Promise<T>;
  /** Resolves with the job row once its status is one of `statuses` (default: any final status). */
  waitForJobStatus(jobId: string, statuses?: JobStatus | readonly JobStatus[], timeoutMs?: number): Promise<JobView>;
  /** A JSON snapshot of devices, jobs and PATCHes (for --state-file). */
  snapshot(): CloudSnapshot;
  close(): Promise<void>;
}

/** Admin view of a device. */
export interface DeviceView {
  id: number;
  uuid: string;
  hasApiKey: boolean;
  apiKeySha256: string | null;
  active: boolean;
  registrationComplete: boolean;
  deviceName: string;
  deviceType: string;
  fleetId: string;
  macAddress: string | null;
  osVersion: string | null;
  agentVersion: string | null;
  hasPublicKey: boolean;
  createdAt: string;
}

/** What snapshot() returns. */
export interface CloudSnapshot {
  generation: ApiGeneration;
  devices: DeviceView[];
  jobs: JobView[];
  patches: PatchRecord[];
  counts: Record<string, number>;
}

const ROUTES = {
  devicesNext: 'GET /devices/:uuid/jobs/next',
  devicesStatus: 'PATCH /devices/:uuid/jobs/:jobId/status',
  agentsNext: 'GET /agents/:uuid/jobs/next',
  agentsStatus: 'PATCH /agents/:uuid/jobs/:jobId/status',
  deviceRegister: 'POST /device/register',
  agentRegister: 'POST /agent/register',
  keyExchange: 'POST /device/:uuid/key-exchange',
  challenge: 'POST /device/:uuid/challenge',
  unknown: 'unknown',
} as const;

/** Starts a reference cloud on 127.0.0.1 and resolves once it listens. */
export async function startReferenceCloud(options: ReferenceCloudOptions = {}): Promise<ReferenceCloud> {
  const now = options.now ?? Date.now;
  const generation = options.generation ?? 'devices';
  const seedDevices = (options.devices ?? []).map((d) => ({ ...d }));
  const seedKeys = (options.provisioningKeys ?? []).map((k) => ({ ...k }));
  const core: CloudCore = {
    state: createCloudState(seedDevices, seedKeys, now()),
    generation,
    basePath: (options.basePath ?? '/api/v1').replace(/\/+$/, ''),
    now,
    noJobAnswer: options.noJobAnswer ?? 'contract',
    cancelMode: options.cancelMode ?? 'off',
    registrationCaCert: options.registrationCaCert ?? null,
    registrationLimit: options.registrationLimit ?? { max: 5, windowMs: 15 * 60 * 1000 },
    deviceRateLimit: options.deviceRateLimit ?? null,
    challengeTtlMs: options.challengeTtlMs ?? 5 * 60 * 1000,
    maxBodyBytes: options.maxBodyBytes ?? 16 * 1024 * 1024,
    recordRequests: options.recordRequests ?? true,
    onChange: options.onChange ?? (() => undefined),
    push: options.push ?? null,
  };
  let notifications = 0;
  // The execute API publishes a notification for every job it creates (the scheduler's jobs get none).
  const publishNotification = (row: JobRow): boolean => {
    if (!core.push) return false;
    const topic = notificationTopic(generation, row.device_uuid, core.push.tenantId ?? 'tenant-1');
    const queuedAt = Date.parse(row.created_at);
    core.push.publisher.publish(topic, notificationPayload(row.job_id, row.job_document, Number.isNaN(queuedAt) ? now() : queuedAt, now()));
    notifications += 1;
    return true;
  };
  let faults: ActiveFault[] = [];
  let nextFaultId = 1;
  const sockets = new Set<Socket>();
  const timers = new Set<NodeJS.Timeout>();
  let listening = false;
  let closed = false;
  let port = options.port ?? 0;
  const hanging = new Set<ServerResponse>();

  const onRequest = (req: IncomingMessage, res: ServerResponse): void => {
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    const path = q === -1 ? url : url.slice(0, q);
    if (path === '/admin' || path.startsWith('/admin/')) {
      handleAdminRequest(cloud, adminHooks, req, res, path.slice('/admin'.length), url).catch((error: unknown) => {
        if (!res.headersSent) res.writeHead(500, { 'Content-Type': 'application/json' });
        res.end(JSON.stringify({ error: 'admin failure', message: String(error) }));
      });
      return;
    }
    const method = req.method ?? 'GET';
    const record: RequestRecord = {
      seq: core.state.nextRequestSeq++,
      at: now(),
      method,
      path,
      route: ROUTES.unknown,
      auth: 'none',
      fault: null,
      status: 0,
    };
    if (core.recordRequests) core.state.requests.push(record);
    const ctx: RouteContext = { req, res, record, path, loseAnswer: false };
    const fault = takeFault(faults, method, path);
    if (fault) {
      record.fault = fault.spec.kind;
      record.route = routeOf(core, method, path).route;
      countRoute(record.route);
      if (fault.spec.kind === 'hang') {
        hanging.add(res);
        res.on('close', () => hanging.delete(res));
      }
      if (answerWithFault(req, res, fault.spec, now())) {
        if (fault.spec.kind !== 'drop' && fault.spec.kind !== 'hang') record.status = res.statusCode;
        return;
      }
      if (fault.spec.kind === 'lose-answer') {
        ctx.loseAnswer = true;
        route(ctx, false);
        return;
      }
      const timer = setTimeout(() => {
        timers.delete(timer);
        if (!res.destroyed) route(ctx, false);
      }, fault.spec.delayMs ?? 1000);
      timers.add(timer);
      return;
    }
    route(ctx, true);
  };
  const countRoute = (name: string): void => {
    core.state.counts.set(name, (core.state.counts.get(name) ?? 0) + 1);
  };

  const route = (ctx: RouteContext, count: boolean): void => {
    const method = ctx.req.method ?? 'GET';
    const match = routeOf(core, method, ctx.path);
    ctx.record.route = match.route;
    if (count) countRoute(match.route);
    const done = (p: Promise<void> | void): void => {
      if (p) p.catch((error: unknown) => failRequest(ctx, error));
    };
    try {
      switch (match.route) {
        case ROUTES.devicesNext:
        case ROUTES.agentsNext:
          handleNextJob(core, ctx, match.uuid);
          return;
        case ROUTES.devicesStatus:
        case ROUTES.agentsStatus:
          done(handleStatusPatch(core, ctx, match.uuid, match.jobId));
          return;
        case ROUTES.deviceRegister:
          done(handleDeviceRegister(core, ctx));
          return;
        case ROUTES.agentRegister:
          done(handleAgentRegister(core, ctx));
          return;
        case ROUTES.keyExchange:
          done(handleKeyExchange(core, ctx, match.uuid));
          return;
        case ROUTES.challenge:
          done(handleNewChallenge(core, ctx, match.uuid));
          return;
        default:
          ctx.req.resume();
          answerUnknownRoute(core, ctx);
      }
    } catch (error) {
      failRequest(ctx, error);
    }
  };

  const server: Server = options.tls
    ? createHttpsServer(
        {
          cert: options.tls.cert,
          key: options.tls.key,
          ...(options.tls.ca !== undefined ? { ca: options.tls.ca } : {}),
          requestCert: options.tls.requestCert ?? false,
          rejectUnauthorized: options.tls.requestCert ?? false,
        },
        onRequest,
      )
    : createHttpServer(onRequest);
  server.keepAliveTimeout = 65_000;
  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  // A client that breaks off a TLS handshake (bad CA, pin mismatch) is normal here.
  server.on('tlsClientError', () => undefined);
  server.on('clientError', (_error, socket) => socket.destroy());

  const listen = (): Promise<void> =>
    new Promise((resolve, reject) => {
      const onError = (error: Error): void => reject(error);
      server.once('error', onError);
      server.listen({ host: '127.0.0.1', port }, () => {
        server.off('error', onError);
        const address = server.address();
        if (address && typeof address === 'object') port = address.port;
        listening = true;
        resolve();
      });
    });

  const shutdown = async (): Promise<void> => {
    if (!listening) return;
    listening = false;
    const closing = new Promise<void>((resolve) => server.close(() => resolve()));
    for (const res of hanging) res.destroy();
    hanging.clear();
    for (const socket of sockets) socket.destroy();
    sockets.clear();
    await closing;
  };

  const clearTimers = (): void => {
    for (const timer of timers) clearTimeout(timer);
    timers.clear();
  };

  await listen();
  const scheme = options.tls ? 'https' : 'http';
  const origin = `${scheme}://127.0.0.1:${port}`;

  const requireJob = (jobId: string): JobRow => {
    const row = core.state.jobs.get(jobId);
    if (!row) throw new Error(`reference cloud: no job ${jobId}`);
    return row;
  };
  const requireDevice = (uuid: string) => {
    const device = core.state.devices.get(uuid);
    if (!device) throw new Error(`reference cloud: no device ${uuid}`);
    return device;
  };

  const cloud: ReferenceCloud = {
    url: `${origin}${core.basePath}`,
    origin,
    adminUrl: `${origin}/admin`,
    port,
    generation,
    addDevice(seed) {
      addDevice(core.state, seed, now());
      core.onChange();
    },
    setDeviceActive(uuid, active) {
      requireDevice(uuid).active = active;
      core.onChange();
    },
    setRegistrationComplete(uuid, complete) {
      requireDevice(uuid).registrationComplete = complete;
      core.onChange();
    },
    getDevice(uuid) {
      const device = core.state.devices.get(uuid);
      return device ? viewDevice(device) : undefined;
    },
    listDevices() {
      return [...core.state.devices.values()].map(viewDevice);
    },
    addProvisioningKey(seed) {
      core.state.provisioningKeys.set(seed.key, { ...seed });
    },
    preRegisterUuid(uuid) {
      core.state.preRegistered.push(uuid);
      if (!core.state.devices.has(uuid)) addDevice(core.state, { uuid, registrationComplete: false }, now());
      core.onChange();
    },
    queueJob(uuid, input) {
      const row = insertJob(core.state, uuid, input, now());
      core.onChange();
      publishNotification(row);
      return copyJobRow(row);
    },
    queueJobs(uuid, count, input) {
      const rows: JobView[] = [];
      for (let i = 0; i < count; i += 1) {
        rows.push(copyJobRow(insertJob(core.state, uuid, { ...input, jobId: undefined, name: `${input.name} #${i + 1}` }, now())));
      }
      core.onChange();
      for (const row of rows) publishNotification(row);
      return rows;
    },
    notify(jobId) {
      return publishNotification(requireJob(jobId));
    },
    notificationsSent: () => notifications,
    listJobs(uuid) {
      const rows = [...core.state.jobs.values()];
      return (uuid === undefined ? rows : rows.filter((r) => r.device_uuid === uuid)).map(copyJobRow);
    },
    getJob(jobId) {
      const row = core.state.jobs.get(jobId);
      return row ? copyJobRow(row) : undefined;
    },
    cancelJob(jobId) {
      const row = requireJob(jobId);
      const iso = new Date(now()).toISOString();
      row.canceled_by_server = true;
      row.status = 'CANCELED';
      row.updated_at = iso;
      row.completed_at = iso;
      core.onChange();
      return copyJobRow(row);
    },
    deleteJob(jobId) {
      requireJob(jobId);
      core.state.jobs.delete(jobId);
      core.onChange();
    },
    setCancelMode(mode) {
      core.cancelMode = mode;
    },
    setNoJobAnswer(answer) {
      core.noJobAnswer = answer;
    },
    patches(jobId) {
      const all = core.state.patches;
      return (jobId === undefined ? all : all.filter((p) => p.jobId === jobId)).map((p) => ({ ...p }));
    },
    requests() {
      return core.state.requests.map((r) => ({ ...r }));
    },
    requestCounts() {
      return Object.fromEntries(core.state.counts);
    },
    injectFault(spec) {
      const problem = checkFaultSpec(spec);
      if (problem !== null) throw new Error(`reference cloud: ${problem}`);
      const fault = activateFault(nextFaultId++, spec);
      faults.push(fault);
      return fault.id;
    },
    clearFaults() {
      faults = [];
    },
    listFaults() {
      return faults.map((f) => ({
        id: f.id,
        spec: { ...f.spec },
        remaining: f.remaining === Number.POSITIVE_INFINITY ? ('always' as const) : f.remaining,
        used: f.used,
      }));
    },
    setCertificate(cert, key) {
      if (!options.tls) throw new Error('reference cloud: setCertificate needs a server started with tls');
      (server as unknown as { setSecureContext(o: { cert: string; key: string }): void }).setSecureContext({ cert, key });
    },
    async down() {
      await shutdown();
    },
    async up() {
      if (closed) throw new Error('reference cloud: closed for good');
      if (listening) return;
      await listen();
    },
    isUp() {
      return listening;
    },
    reset() {
      core.state = createCloudState(seedDevices, seedKeys, now());
      faults = [];
      core.cancelMode = options.cancelMode ?? 'off';
      core.noJobAnswer = options.noJobAnswer ?? 'contract';
      core.onChange();
    },
    waitFor(predicate, timeoutMs = 10_000, what = 'condition') {
      return waitFor(() => predicate(cloud), timeoutMs, what);
    },
    waitForJobStatus(jobId, statuses = [...FINAL_STATUSES], timeoutMs = 10_000) {
      const wanted: readonly JobStatus[] = typeof statuses === 'string' ? [statuses] : statuses;
      return waitFor(
        () => {
          const row = cloud.getJob(jobId);
          return row && wanted.includes(row.status) ? row : undefined;
        },
        timeoutMs,
        () => `job ${jobId} to reach ${wanted.join('|')} (now ${cloud.getJob(jobId)?.status ?? 'deleted'})`,
      );
    },
    snapshot() {
      return {
        generation,
        devices: cloud.listDevices(),
        jobs: cloud.listJobs(),
        patches: cloud.patches(),
        counts: cloud.requestCounts(),
      };
    },
    async close() {
      closed = true;
      clearTimers();
      await shutdown();
    },
  };

  // Hooks the admin HTTP API needs beyond the public methods.
  const adminHooks = {
    scheduleUp(ms: number): void {
      const timer = setTimeout(() => {
        timers.delete(timer);
        if (!closed) cloud.up().catch(() => undefined);
      }, ms);
      timers.add(timer);
    },
  };

  return cloud;
}

/** The hooks admin-http.ts gets from the server. */
export interface AdminHooks {
  scheduleUp(ms: number): void;
}

type RouteMatch = { route: string; uuid: string; jobId: string };

// Matches a device-side path against the routes of the server's generation.
function routeOf(core: CloudCore, method: string, path: string): RouteMatch {
  const unknown: RouteMatch = { route: ROUTES.unknown, uuid: '', jobId: '' };
  if (!path.startsWith(`${core.basePath}/`)) return unknown;
  const parts = path.slice(core.basePath.length + 1).split('/');
  const [a, b, c, d, e] = parts;
  const own = core.generation;
  if (parts.length === 4 && a === own && c === 'jobs' && d === 'next' && method === 'GET' && b) {
    return { route: own === 'devices' ? ROUTES.devicesNext : ROUTES.agentsNext, uuid: decodeURIComponent(b), jobId: '' };
  }
  if (parts.length === 5 && a === own && c === 'jobs' && e === 'status' && method === 'PATCH' && b && d) {
    return { route: own === 'devices' ? ROUTES.devicesStatus : ROUTES.agentsStatus, uuid: decodeURIComponent(b), jobId: decodeURIComponent(d) };
  }
  if (method !== 'POST') return unknown;
  if (parts.length === 2 && b === 'register') {
    if (a === 'device' && own === 'devices') return { route: ROUTES.deviceRegister, uuid: '', jobId: '' };
    if (a === 'agent' && own === 'agents') return { route: ROUTES.agentRegister, uuid: '', jobId: '' };
    return unknown;
  }
  if (parts.length === 3 && a === 'device' && b) {
    if (c === 'key-exchange') return { route: ROUTES.keyExchange, uuid: decodeURIComponent(b), jobId: '' };
    if (c === 'challenge' && own === 'agents') return { route: ROUTES.challenge, uuid: decodeURIComponent(b), jobId: '' };
  }
  return unknown;
}

function failRequest(ctx: RouteContext, error: unknown): void {
  ctx.record.status = 500;
  if (ctx.res.headersSent) {
    ctx.res.destroy();
    return;
  }
  const text = JSON.stringify({ error: 'Internal Server Error', message: String(error) });
  ctx.res.writeHead(500, { 'Content-Type': 'application/json; charset=utf-8', 'Content-Length': Buffer.byteLength(text) });
  ctx.res.end(text);
}

function viewDevice(device: import('./cloud-state.js').DeviceRecord): DeviceView {
  return {
    id: device.id,
    uuid: device.uuid,
    hasApiKey: device.apiKeyHash !== null,
    apiKeySha256: device.apiKeyHash,
    active: device.active,
    registrationComplete: device.registrationComplete,
    deviceName: device.deviceName,
    deviceType: device.deviceType,
    fleetId: device.fleetId,
    macAddress: device.macAddress,
    osVersion: device.osVersion,
    agentVersion: device.agentVersion,
    hasPublicKey: device.publicKey !== null,
    createdAt: device.createdAt,
  };
}
