// The outcome the self-update handler's watcher writes for a job (debian/handlers/self-update):
// `<state_dir>/self-update/<sha256 of the job id>.outcome`, lines `key=value`
// (status, from, to, reason). The agent that takes the job back after the
// restart reads it: pending (the watcher still decides), succeeded (the job
// goes on), rolled-back or failed (the job ends FAILED with the reason).
//
// INVARIANTS
// - The directory is root's (0700, owned by uid 0, not a symlink): a file in it
//   was written by root. Anything else is refused, never followed.
// - A file that does not parse is an error naming it, not "no self-update".
import { createHash } from 'node:crypto';
import { lstat, readFile, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { isErrnoCode } from './atomic-file.js';

/** What the watcher decided. */
export interface SelfUpdateOutcome {
  status: 'pending' | 'succeeded' | 'rolled-back' | 'failed';
  /** Package versions, e.g. 0.2.0-1. */
  from: string;
  to: string;
  reason: string;
}

const STATUSES: readonly SelfUpdateOutcome['status'][] = ['pending', 'succeeded', 'rolled-back', 'failed'];
const MAX_BYTES = 16_384;
const MAX_REASON = 4000;

/** The outcome file of `jobId` under `stateDir`. */
export function selfUpdateOutcomePath(stateDir: string, jobId: string): string {
  return join(stateDir, 'self-update', `${createHash('sha256').update(jobId, 'utf8').digest('hex')}.outcome`);
}

/** Reads the outcome of `jobId`: null when the job ran no self-update; throws on a file that cannot be trusted or parsed. */
export async function readSelfUpdateOutcome(stateDir: string, jobId: string, ownerUid = 0): Promise<SelfUpdateOutcome | null> {
  const dir = join(stateDir, 'self-update');
  const info = await lstat(dir).catch((error: unknown) => {
    if (isErrnoCode(error, 'ENOENT')) return null;
    throw error;
  });
  if (info === null) return null;
  if (!info.isDirectory() || info.uid !== ownerUid || (info.mode & 0o022) !== 0) {
    throw new Error(`${dir} is not a directory only uid ${ownerUid} can write; not reading self-update outcomes from it`);
  }
  const path = selfUpdateOutcomePath(stateDir, jobId);
  let text: string;
  try {
    const file = await lstat(path);
    if (!file.isFile() || file.size > MAX_BYTES) throw new Error(`${path} is not a regular file of at most ${MAX_BYTES} bytes`);
    text = await readFile(path, 'utf8');
  } catch (error) {
    if (isErrnoCode(error, 'ENOENT')) return null;
    throw error;
  }
  return parseSelfUpdateOutcome(text, path);
}

/** Parses the `key=value` lines of an outcome file; `where` names it in errors. */
export function parseSelfUpdateOutcome(text: string, where: string): SelfUpdateOutcome {
  const fields = new Map<string, string>();
  for (const line of text.split('\n')) {
    const at = line.indexOf('=');
    if (at > 0) fields.set(line.slice(0, at), line.slice(at + 1));
  }
  const status = fields.get('status') as SelfUpdateOutcome['status'] | undefined;
  if (status === undefined || !STATUSES.includes(status)) {
    throw new Error(`${where}: status is ${JSON.stringify((status ?? '(missing)').slice(0, 40))}, expected one of ${STATUSES.join(', ')}`);
  }
  const clean = (value: string | undefined, max: number): string =>
    (value ?? '').replace(/[\u0000-\u001f\u007f]/g, ' ').slice(0, max);
  return { status, from: clean(fields.get('from'), 100), to: clean(fields.get('to'), 100), reason: clean(fields.get('reason'), MAX_REASON) };
}

/** Removes the outcome of `jobId` once the job's next state is journaled; missing is fine. */
export async function removeSelfUpdateOutcome(stateDir: string, jobId: string): Promise<void> {
  await unlink(selfUpdateOutcomePath(stateDir, jobId)).catch((error: unknown) => {
    if (!isErrnoCode(error, 'ENOENT')) throw error;
  });
}
