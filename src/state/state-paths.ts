// Where each store keeps its files under `[agent] state_dir`.
import { join } from 'node:path';

/** The files and directories of the durable state. */
export interface StatePaths {
  stateDir: string;
  journalDir: string;
  outboxDir: string;
  historyDir: string;
  identityFile: string;
  /** Nonces of signed job documents that ran (security/nonce-store.ts). */
  nonceFile: string;
}

/** Resolves the state layout under `stateDir`. */
export function resolveStatePaths(stateDir: string): StatePaths {
  return {
    stateDir,
    journalDir: join(stateDir, 'journal'),
    outboxDir: join(stateDir, 'outbox'),
    historyDir: join(stateDir, 'history'),
    identityFile: join(stateDir, 'identity.json'),
    nonceFile: join(stateDir, 'nonces.json'),
  };
}
