// What main.ts hands the CLI: the process's inputs and outputs as values, so
// no command touches process.* itself.
import type { InstalledAddon } from '../service/native.js';
import type { TestLoopDeath } from './test-loop-death.js';

/** The process as the CLI sees it. */
export interface CliContext {
  argv: readonly string[];
  env: Readonly<Record<string, string | undefined>>;
  version: string;
  /** What runs the agent, for --version: e.g. "node v24.22.3, linux-arm64, single executable" (see describeRuntime). */
  runtime: string;
  /** The embedded native addon (single executable), or null when running from source. */
  addon: Uint8Array | null;
  /** The addon installed next to the bundle (armhf package on the system's nodejs), or null. */
  installedAddon: InstalledAddon | null;
  /** The running executable's path (process.execPath): a single executable in <prefix>/bin finds its package's addon in <prefix>/lib/cloudjobs. */
  executable?: string;
  pid: number;
  isRoot: boolean;
  uid: number;
  /** Read only by `register --provisioning-key-stdin` (a secret never goes on a command line). */
  stdin: NodeJS.ReadableStream;
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream & { fd?: number };
  /** Registers the handler of SIGTERM and SIGINT. */
  onStopSignal(handler: (signal: 'SIGTERM' | 'SIGINT') => void): void;
  setTitle(title: string): void;
  /**
   * TEST ONLY: the loop `cloudjobs run` makes die `afterMs` after start, from
   * CLOUDJOBS_TEST_LOOP_DEATH=<loop>:<ms> (main.ts); null in production.
   */
  testLoopDeath?: TestLoopDeath | null;
}

/**
 * Exit codes of every command (documented in --help). `unavailable` (EX_UNAVAILABLE):
 * `cloudjobs run` under systemd without the native helper, which READY=1 needs; the
 * unit's RestartPreventExitStatus lists it with `config`, as restarting cannot help.
 */
export const EXIT = { ok: 0, failure: 1, usage: 2, unavailable: 69, internal: 70, config: 78 } as const;

/** Facts about the running Node, as main.ts reads them from process. */
export interface RuntimeFacts {
  nodeVersion: string;
  platform: string;
  arch: string;
  singleExecutable: boolean;
}

/** The runtime part of --version: "node v24.22.3, linux-x64, single executable" or "..., system nodejs". */
export function describeRuntime(facts: RuntimeFacts): string {
  return `node ${facts.nodeVersion}, ${facts.platform}-${facts.arch}, ${facts.singleExecutable ? 'single executable' : 'system nodejs'}`;
}
