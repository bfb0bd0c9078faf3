// Small pieces of the agent's sentences and error handling, one copy each.
import { classifyLocalFault, describeError, type LocalFault } from '../errors/errors.js';

/** A failure the cloud client raised, as far as the agent needs to know it. */
export interface CloudFailure {
  kind: string;
  status?: number;
  serverMessage?: string;
  message: string;
}

/** A wait as a person reads it: "250ms", "30s", "60m". */
export function formatDelay(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)}ms`;
  if (ms < 120_000) return `${Math.round(ms / 1000)}s`;
  return `${Math.round(ms / 60_000)}m`;
}

/** "1 report" / "2 reports". */
export function countOf(n: number, noun: string): string {
  return `${n} ${noun}${n === 1 ? '' : 's'}`;
}

/** What the cloud client raised, as the agent needs it (anything else is named 'internal'). */
export function asCloudFailure(error: unknown): CloudFailure {
  if (error && typeof error === 'object' && 'kind' in error) return error as CloudFailure;
  return { kind: 'internal', message: describeError(error) };
}

/** Names a local fault, or rethrows: what is neither the cloud's nor the disk's is a bug. */
export function asLocalFault(error: unknown): LocalFault {
  const fault = classifyLocalFault(error);
  if (fault === null) throw error;
  return fault;
}
