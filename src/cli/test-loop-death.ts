// TEST ONLY (CLOUDJOBS_TEST_LOOP_DEATH=<loop>:<ms>, read by main.ts): makes one
// of the agent's loops die `afterMs` after start, to prove that systemd
// restarts the agent (test/integration/loop-death.sh). The death is a bug in a
// port only that loop uses, so the agent's own supervision is what is tested;
// AgentDeps carries no hook for it.
import type { AgentDeps, LoopName } from '../agent/ports.js';
import type { Clock } from '../clock/clock.js';

/** Which loop dies, and when. */
export interface TestLoopDeath {
  loop: LoopName;
  afterMs: number;
}

/** `deps` with the port of `fault.loop` failing from `fault.afterMs` on: poll checkState, delivery's outbox reads, a job's progress snapshots, the status file. */
export function withTestLoopDeath(deps: AgentDeps, fault: TestLoopDeath, clock: Clock): AgentDeps {
  const error = new Error(`test fault: CLOUDJOBS_TEST_LOOP_DEATH killed the ${fault.loop} loop`);
  let due = false;
  const death = clock.sleep(fault.afterMs).then((): never => {
    due = true;
    throw error;
  });
  // raced only by the loop that is to die; unraced it must not count as unhandled
  death.catch(() => undefined);
  const failIfDue = (): void => {
    if (due) throw error;
  };
  switch (fault.loop) {
    case 'poll': {
      const checkState = deps.checkState ?? (async () => null);
      return { ...deps, checkState: async () => (failIfDue(), checkState()) };
    }
    case 'delivery': {
      const { outbox } = deps;
      return {
        ...deps,
        outbox: {
          ...outbox,
          next: async () => (failIfDue(), outbox.next()),
          waitForEntry: (signal) => Promise.race([outbox.waitForEntry(signal), death]),
        },
      };
    }
    case 'progress': {
      const { engine } = deps;
      return {
        ...deps,
        engine: {
          ...engine,
          start: (job, hooks, start) => {
            const run = engine.start(job, hooks, start);
            let snapshots = 0;
            // the first snapshot is taken by the poll loop as the job starts; the progress loop takes the others
            const snapshot = () => {
              snapshots += 1;
              if (snapshots > 1) failIfDue();
              return run.snapshot();
            };
            return Object.assign(Object.create(run) as typeof run, { snapshot });
          },
        },
      };
    }
    case 'status writer':
      return { ...deps, writeStatus: async (status) => (failIfDue(), deps.writeStatus(status)) };
  }
}
