// The last-resort uuid source of the seed guide: a local balena-style
// supervisor (GET {supervisor_url}/v2/device). Never fatal: every failure
// becomes a reason the "Device UUID not available" message can show.
import { checkPathSegment } from '../contract/limits.js';
import { describeError } from '../errors/errors.js';
import type { HttpTransport } from './http.js';
import { isRecord, parseJsonBody } from './parse-answer.js';

/** The supervisor's uuid, or why there is none. */
export type SupervisorAnswer = { uuid: string } | { uuid: null; reason: string };

/** Default time limit of the probe: the supervisor is local, so a short one. */
export const SUPERVISOR_TIMEOUT_MS = 2000;

/** Options of fetchSupervisorUuid. */
export interface SupervisorProbeOptions {
  /** device.supervisor_url; empty disables the probe. */
  supervisorUrl: string;
  transport: HttpTransport;
  timeoutMs?: number;
  signal?: AbortSignal;
}

/** Asks the local supervisor for the device uuid; resolves (never rejects) with it or a reason. */
export async function fetchSupervisorUuid(options: SupervisorProbeOptions): Promise<SupervisorAnswer> {
  if (!options.supervisorUrl) return { uuid: null, reason: 'the supervisor lookup is disabled (device.supervisor_url is empty)' };
  const url = `${options.supervisorUrl.replace(/\/+$/, '')}/v2/device`;
  try {
    const response = await options.transport.request({
      method: 'GET',
      url,
      timeoutMs: options.timeoutMs ?? SUPERVISOR_TIMEOUT_MS,
      ...(options.signal ? { signal: options.signal } : {}),
    });
    if (response.status !== 200) return { uuid: null, reason: `the supervisor at ${url} answered ${response.status}` };
    const body = parseJsonBody(response);
    const uuid = findUuid(body);
    if (uuid) return { uuid };
    return { uuid: null, reason: `the supervisor at ${url} answered without a uuid` };
  } catch (error) {
    if (options.signal?.aborted) throw error;
    return { uuid: null, reason: `the supervisor at ${url} did not answer: ${describeError(error)}` };
  }
}

// balena puts it at the top; some wrappers nest it under "device" or "data".
function findUuid(body: unknown): string | null {
  if (!isRecord(body)) return null;
  for (const holder of [body, body.device, body.data]) {
    // a uuid that is not one URL path segment could address another route (/devices/../jobs/next)
    if (isRecord(holder) && typeof holder.uuid === 'string' && checkPathSegment(holder.uuid.trim()) === null) return holder.uuid.trim();
  }
  return null;
}
