// Runs async operations one after another, so concurrent callers of a store
// never interleave their disk writes and in-memory updates.

/** A FIFO of async operations; each runs after the previous one settled. */
export interface SerialQueue {
  run<T>(operation: () => Promise<T>): Promise<T>;
  /** Resolves when everything queued so far has settled. */
  idle(): Promise<void>;
}

/** Creates an empty SerialQueue. */
export function createSerialQueue(): SerialQueue {
  let tail: Promise<unknown> = Promise.resolve();
  return {
    run(operation) {
      const result = tail.then(operation, operation);
      tail = result.catch(() => undefined);
      return result;
    },
    async idle() {
      await tail;
    },
  };
}
