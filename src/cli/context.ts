// What main.ts hands the CLI: the process's inputs and outputs as values, so
// no command touches process.* itself.

/** The process as the CLI sees it. */
export interface CliContext {
  argv: readonly string[];
  env: Readonly<Record<string, string | undefined>>;
  version: string;
  /** The embedded native addon (single executable), or null when running from source. */
  addon: Uint8Array | null;
  pid: number;
  isRoot: boolean;
  uid: number;
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream & { fd?: number };
  /** Registers the handler of SIGTERM and SIGINT. */
  onStopSignal(handler: (signal: 'SIGTERM' | 'SIGINT') => void): void;
  setTitle(title: string): void;
  /**
   * TEST ONLY: the loop `cloudjobs run` makes die `afterMs` after start, from
   * CLOUDJOBS_TEST_LOOP_DEATH=<loop>:<ms> (main.ts); null in production.
   */
  testLoopDeath?: { loop: string; afterMs: number } | null;
}

/** Exit codes of every command (documented in --help). */
export const EXIT = { ok: 0, failure: 1, usage: 2, internal: 70, config: 78 } as const;
