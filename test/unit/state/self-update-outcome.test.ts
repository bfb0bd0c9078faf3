import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  parseSelfUpdateOutcome,
  readSelfUpdateOutcome,
  removeSelfUpdateOutcome,
  selfUpdateOutcomePath,
} from '../../../src/state/self-update-outcome.js';

const uid = process.getuid?.() ?? 0;

describe('self-update outcome', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'cloudjobs-su-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('parses the key=value lines the handler writes and strips control characters', () => {
    expect(parseSelfUpdateOutcome('status=rolled-back\nfrom=0.2.0-1\nto=0.2.1-1\nreason=rolled back to 0.2.0-1: x\u0007y\n', 'f')).toEqual({
      status: 'rolled-back',
      from: '0.2.0-1',
      to: '0.2.1-1',
      reason: 'rolled back to 0.2.0-1: x y',
    });
  });

  it('rejects an unknown status, naming the file', () => {
    expect(() => parseSelfUpdateOutcome('status=done\n', '/x.outcome')).toThrow('/x.outcome: status is "done", expected one of pending, succeeded, rolled-back, failed');
    expect(() => parseSelfUpdateOutcome('', '/x.outcome')).toThrow('status is "(missing)"');
  });

  it('is null without the directory or the file; reads, then removes it', async () => {
    expect(await readSelfUpdateOutcome(dir, 'job-1', uid)).toBeNull();
    await mkdir(path.join(dir, 'self-update'), { mode: 0o700 });
    expect(await readSelfUpdateOutcome(dir, 'job-1', uid)).toBeNull();
    await writeFile(selfUpdateOutcomePath(dir, 'job-1'), 'status=succeeded\nfrom=1\nto=2\nreason=updated from 1 to 2\n');
    expect(await readSelfUpdateOutcome(dir, 'job-1', uid)).toEqual({ status: 'succeeded', from: '1', to: '2', reason: 'updated from 1 to 2' });
    expect(path.basename(selfUpdateOutcomePath(dir, 'job-1'))).toMatch(/^[0-9a-f]{64}\.outcome$/);
    await removeSelfUpdateOutcome(dir, 'job-1');
    await removeSelfUpdateOutcome(dir, 'job-1');
    expect(await readSelfUpdateOutcome(dir, 'job-1', uid)).toBeNull();
  });

  it('refuses a directory others can write or another user owns', async () => {
    await mkdir(path.join(dir, 'self-update'));
    await chmod(path.join(dir, 'self-update'), 0o777);
    await expect(readSelfUpdateOutcome(dir, 'job-1', uid)).rejects.toThrow('is not a directory only uid');
    await chmod(path.join(dir, 'self-update'), 0o700);
    await expect(readSelfUpdateOutcome(dir, 'job-1', uid + 1)).rejects.toThrow('is not a directory only uid');
  });
});
