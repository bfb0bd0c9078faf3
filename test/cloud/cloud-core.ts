// What every route handler of the reference cloud shares: the tables, the
// resolved options and a way to answer that also fills in the request log.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { ApiGeneration } from '../../src/contract/types.js';
import type { CloudState, RequestRecord } from './cloud-state.js';
import { writeJson, writeRaw } from './http-io.js';

/** How the server answers a status PATCH for a job canceled through the admin API (EXTENSION). */
export type CancelMode = 'off' | '409' | '410' | '200-canceled';

/** The resolved, mutable settings of one server instance. */
export interface CloudCore {
  state: CloudState;
  generation: ApiGeneration;
  basePath: string;
  now: () => number;
  /** 'contract': the generation's own "no job" answer; '204': 204 No Content. */
  noJobAnswer: 'contract' | '204';
  cancelMode: CancelMode;
  /** PEM put into registration answers as api.tlsConfig.caCert, or null. */
  registrationCaCert: string | null;
  registrationLimit: { max: number; windowMs: number };
  /** Device API requests allowed per key per window (the real server: about 300/min), or null for no limit. */
  deviceRateLimit: { max: number; windowMs: number } | null;
  challengeTtlMs: number;
  maxBodyBytes: number;
  recordRequests: boolean;
  /** Called after every change of jobs, patches or devices (for --state-file). */
  onChange: () => void;
  /** MQTT push notifications as the real servers send them, or null (no broker). */
  push: PushOptions | null;
}

/** The reference cloud's broker side (test/cloud/mosquitto.ts, push-notify.ts). */
export interface PushOptions {
  publisher: { publish(topic: string, payload: string): void };
  /** tenantId of generation agents topics and registration answers. @default 'tenant-1' */
  tenantId?: string;
  /** What registration answers carry; without it they say no broker (mqtt.broker ''). */
  registration?: {
    broker: string;
    brokerConfig?: Record<string, unknown>;
    /** Creates the device's broker user and returns its password (given once, in the answer). */
    createUser(username: string): Promise<string>;
  };
}

/** One device-side request in flight. */
export interface RouteContext {
  req: IncomingMessage;
  res: ServerResponse;
  record: RequestRecord;
  path: string;
  /** Fault 'lose-answer': do the work, then cut the connection instead of answering. */
  loseAnswer: boolean;
}

/** Returns false (after cutting the connection) when the answer must be lost; the caller then writes nothing. */
export function mayAnswer(ctx: RouteContext, status: number): boolean {
  if (!ctx.loseAnswer) {
    ctx.record.status = status;
    return true;
  }
  ctx.record.status = 0;
  ctx.req.socket.destroy();
  return false;
}

/** Answers JSON and notes the status in the request log. */
export function answerJson(ctx: RouteContext, status: number, body: unknown, headers?: Record<string, string>): void {
  if (!mayAnswer(ctx, status)) return;
  writeJson(ctx.res, status, body, headers);
}

/** Answers a route the server does not have, in the body shape of its generation. */
export function answerUnknownRoute(core: CloudCore, ctx: RouteContext): void {
  const method = ctx.req.method ?? 'GET';
  if (!mayAnswer(ctx, 404)) return;
  if (core.generation === 'agents') {
    writeJson(ctx.res, 404, {
      error: 'Not found',
      message: `Route ${method} ${ctx.path} not found`,
      timestamp: new Date(core.now()).toISOString(),
    });
    return;
  }
  // Express's default finalhandler page, which the older server leaves in place.
  writeRaw(
    ctx.res,
    404,
    'text/html; charset=utf-8',
    `<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n<title>Error</title>\n</head>\n<body>\n<pre>Cannot ${method} ${escapeHtml(ctx.path)}</pre>\n</body>\n</html>\n`,
    { 'Content-Security-Policy': "default-src 'none'", 'X-Content-Type-Options': 'nosniff' },
  );
}

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}
