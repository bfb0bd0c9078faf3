// The nonce store: a nonce runs once until it expires, survives a restart, and a corrupt file is moved aside.
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { MAX_NONCES, openNonceStore } from '../../../src/security/nonce-store.js';
import { createRecordingLog, makeTempDir } from '../state/helpers.js';

const NOW = Date.parse('2026-12-06T10:00:00Z');
const HOUR = 3_600_000;

describe('nonce store', () => {

  it('refuses a nonce another job used until it expires, lets the same job claim it again, and remembers across opens', async () => {
    const dir = await makeTempDir();
    const log = createRecordingLog();
    const clock = { now: () => NOW };
    const store = openNonceStore({ stateDir: dir, log, clock });
    expect(await store.claim('n1', NOW + HOUR, 'job-a', NOW)).toEqual({ ok: true });
    expect(await store.claim('n1', NOW + HOUR, 'job-a', NOW + 1)).toEqual({ ok: true });
    const again = openNonceStore({ stateDir: dir, log, clock });
    expect(await again.claim('n1', NOW + HOUR, 'job-b', NOW + 2)).toEqual({
      ok: false,
      reason: 'nonce already used by job job-a at 2026-12-06T10:00:00.000Z; refused until the document expires at 2026-12-06T11:00:00.000Z',
    });
    expect(await again.usedBy('n1', null, NOW)).toMatchObject({ jobId: 'job-a' });
    // past its expiry the entry is dropped, and the next write no longer holds it
    expect(await again.claim('n1', NOW + 3 * HOUR, 'job-c', NOW + HOUR)).toEqual({ ok: true });
    const stored = JSON.parse(await readFile(join(dir, 'nonces.json'), 'utf8')) as { nonces: { jobId: string }[] };
    expect(stored.nonces.map((n) => n.jobId)).toEqual(['job-c']);
  });

  it('holds at most MAX_NONCES unexpired nonces and refuses past that', async () => {
    const dir = await makeTempDir();
    const nonces = Array.from({ length: MAX_NONCES }, (_, i) => ({ nonce: `n${i}`, expiresAt: NOW + HOUR, jobId: `j${i}`, usedAt: NOW }));
    await writeFile(join(dir, 'nonces.json'), JSON.stringify({ version: 1, nonces }));
    const store = openNonceStore({ stateDir: dir, log: createRecordingLog(), clock: { now: () => NOW } });
    expect(await store.claim('new', NOW + HOUR, 'job', NOW)).toMatchObject({ ok: false, reason: expect.stringContaining(`already remembers ${MAX_NONCES} unexpired nonces`) });
  });

  it('moves a corrupt file aside with a warning and goes on', async () => {
    const dir = await makeTempDir();
    await writeFile(join(dir, 'nonces.json'), '{"version":1,"nonces":[{"nonce":1}]}');
    const log = createRecordingLog();
    const store = openNonceStore({ stateDir: dir, log, clock: { now: () => NOW } });
    expect(await store.claim('n', NOW + HOUR, 'job', NOW)).toEqual({ ok: true });
    expect((await readdir(dir)).filter((f) => f.startsWith('nonces.json.corrupt-'))).toHaveLength(1);
    expect(log.messages('warn')[0]).toMatch(/^state file .*nonces\.json is corrupt \(nonce: expected a string, got 1\); moved it to /);
  });
});
