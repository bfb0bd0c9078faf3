// Polling wait for tests: small sleeps until a condition holds or time runs out.
import { setTimeout as sleep } from 'node:timers/promises';

/** Resolves with the first truthy value of `check()`; rejects after `timeoutMs` naming `what` (a function is called then). */
export async function waitFor<T>(
  check: () => T | undefined | null | false | Promise<T | undefined | null | false>,
  timeoutMs = 10_000,
  what: string | (() => string) = 'condition',
  intervalMs = 10,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() >= deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${typeof what === 'function' ? what() : what}`);
    await sleep(intervalMs);
  }
}
