// The nonces of signed documents that ran, in `state_dir/nonces.json`, each
// kept until its document expires: a document with a nonce runs once. The
// file is read before every claim (`cloudjobs exec` and the agent share it),
// written atomically, and a corrupt one is moved aside and logged like every
// state file. Entries past their expiry are dropped on each write, and the
// file holds at most MAX_NONCES: the only writers are documents the fleet's
// owner signed, so a full store is a signing mistake and refuses.
// Within a process claims are serialized; between `cloudjobs exec` and the
// agent there is no lock, so a claim made by exec in the same instant as one
// by the agent can be overwritten (exec is an admin's local test, not a
// second runner).
import type { Log } from '../log/log.js';
import { readJsonFile, type TimeSource, writeJsonFile } from '../state/json-file.js';
import { createSerialQueue } from '../state/serial-queue.js';
import { resolveStatePaths } from '../state/state-paths.js';
import { expectInteger, expectRecord, expectString, expectVersion, failValidation } from '../state/validate.js';

/** Nonces remembered at most (a nonce is 128 characters at most: a few MiB). */
export const MAX_NONCES = 10_000;

const VERSION = 1;

/** One remembered nonce. */
export interface NonceRecord {
  nonce: string;
  /** Ms since the epoch: the document's expires. */
  expiresAt: number;
  jobId: string;
  /** Ms since the epoch when it was first claimed. */
  usedAt: number;
}

/** What a claim found. */
export type ClaimResult =
  | { ok: true }
  | { ok: false; reason: string };

/** The store as verification uses it. */
export interface NonceStore {
  /** Records `nonce` for `jobId` unless another job used it before it expires; the same job may claim it again (a resumed job). */
  claim(nonce: string, expiresAt: number, jobId: string, now: number): Promise<ClaimResult>;
  /** Whether `nonce` was used by a job other than `jobId` (read only: `cloudjobs verify`). */
  usedBy(nonce: string, jobId: string | null, now: number): Promise<NonceRecord | null>;
  file: string;
}

/** Opens the store in `stateDir` (nothing is read until the first question). */
export function openNonceStore(options: { stateDir: string; log: Log; clock: TimeSource }): NonceStore {
  const file = resolveStatePaths(options.stateDir).nonceFile;
  const queue = createSerialQueue();
  const read = async (now: number): Promise<NonceRecord[]> => {
    const stored = await readJsonFile(file, validateNonces, options.log, options.clock);
    return (stored ?? []).filter((entry) => entry.expiresAt > now);
  };
  const findOther = (entries: readonly NonceRecord[], nonce: string, jobId: string | null): NonceRecord | null =>
    entries.find((entry) => entry.nonce === nonce && entry.jobId !== jobId) ?? null;
  return {
    file,
    usedBy: (nonce, jobId, now) => queue.run(async () => findOther(await read(now), nonce, jobId)),
    claim: (nonce, expiresAt, jobId, now) =>
      queue.run(async () => {
        const entries = await read(now);
        const other = findOther(entries, nonce, jobId);
        if (other !== null) return { ok: false, reason: describeUse(other) };
        if (entries.some((entry) => entry.nonce === nonce)) return { ok: true };
        if (entries.length >= MAX_NONCES) {
          return { ok: false, reason: `the agent already remembers ${MAX_NONCES} unexpired nonces (${file}); sign documents with shorter expiries` };
        }
        entries.push({ nonce, expiresAt, jobId, usedAt: now });
        await writeJsonFile(file, { version: VERSION, nonces: entries });
        return { ok: true };
      }),
  };
}

/** The reason of a refused replay, naming the job that used the nonce. */
export function describeUse(entry: NonceRecord): string {
  return `nonce already used by job ${entry.jobId} at ${new Date(entry.usedAt).toISOString()}; refused until the document expires at ${new Date(entry.expiresAt).toISOString()}`;
}

function validateNonces(value: unknown): NonceRecord[] {
  const record = expectRecord(value, 'nonces.json');
  expectVersion(record, VERSION);
  const list = record.nonces;
  if (!Array.isArray(list)) failValidation('nonces: expected an array');
  if (list.length > MAX_NONCES) failValidation(`nonces: more than ${MAX_NONCES} entries`);
  return list.map((item, index) => {
    const entry = expectRecord(item, `nonces[${index}]`);
    return {
      nonce: expectString(entry, 'nonce'),
      expiresAt: expectInteger(entry, 'expiresAt'),
      jobId: expectString(entry, 'jobId'),
      usedAt: expectInteger(entry, 'usedAt'),
    };
  });
}
