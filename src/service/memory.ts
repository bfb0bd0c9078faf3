// Gives back the memory of output a step floods the agent with. Every chunk
// read from a pipe is a fresh off-heap buffer; V8 frees them only when a
// young-generation collection runs, and a flood of large chunks allocates
// almost nothing on the JS heap to trigger one until ~64 MiB of buffers are
// outstanding (V8's external-memory limit). A minor collection every few MiB
// of output frees them while they are still few (see test/bench RESULTS.md,
// figure 5). Node exposes collections only through V8's --expose-gc flag,
// which v8.setFlagsFromString can set at run time for contexts made later.
import v8 from 'node:v8';
import vm from 'node:vm';

/** Runs a minor (young generation) collection; null when this Node offers none. */
export function createYoungCollector(): (() => void) | null {
  try {
    v8.setFlagsFromString('--expose-gc');
    const gc: unknown = vm.runInNewContext('gc');
    if (typeof gc !== 'function') return null;
    return () => {
      (gc as (options: { type: 'minor'; execution: 'sync' }) => void)({ type: 'minor', execution: 'sync' });
    };
  } catch {
    return null;
  }
}

/**
 * Runs a full (major) collection, which also gives freed heap pages back to
 * the system; null when this Node offers none. For after a job: what the job
 * left (its output, reports, pipe buffers) is garbage then, but an idle agent
 * allocates too little to make V8 collect it for a long time.
 */
export function createFullCollector(): (() => void) | null {
  try {
    v8.setFlagsFromString('--expose-gc');
    const gc: unknown = vm.runInNewContext('gc');
    if (typeof gc !== 'function') return null;
    // plain gc(): on Node 20, gc({type: 'major', execution: 'sync'}) left a heap of
    // 240 MB of garbage as it was, where gc() brought it to 35 MB and gave the pages back
    return () => {
      (gc as () => void)();
    };
  } catch {
    return null;
  }
}
