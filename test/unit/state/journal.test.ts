import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createManualClock } from '../../../src/clock/clock.js';
import { encodeFileKey } from '../../../src/state/file-key.js';
import { openJournal, type JournalEntry } from '../../../src/state/journal.js';
import {
  BOOT,
  checkEveryTruncation,
  createRecordingLog,
  HOSTILE_JOB_IDS,
  makeOffer,
  makeReport,
  makeStepResult,
  makeTempDir,
  T0,
} from './helpers.js';

async function open(stateDir: string, log = createRecordingLog()) {
  return openJournal({ stateDir, log, clock: createManualClock(T0 + 5000) });
}

// one open per byte of the file: generous on a loaded 2-core machine
const TRUNCATION_TIMEOUT_MS = 180_000;
const ID = '550e8400-e29b-41d4-a716-446655440000';

describe('journal', () => {
  it('has the job on disk when begin() resolves', async () => {
    const stateDir = await makeTempDir();
    const journal = await open(stateDir);
    const entry = await journal.begin(makeOffer(ID), T0, BOOT);
    const path = join(stateDir, 'journal', `${encodeFileKey(ID)}.json`);
    const onDisk = JSON.parse(await readFile(path, 'utf8')) as JournalEntry;
    expect(onDisk).toEqual(entry);
    expect(onDisk).toEqual({
      version: 1,
      jobId: ID,
      jobName: 'Restart Redis',
      offer: makeOffer(ID),
      receivedAt: '2026-11-28T10:00:00.000Z',
      steps: [],
      running: [],
      final: null,
      finishedAt: null,
      reboots: 0,
      rebooting: null,
      boot: BOOT,
    });
  });

  it('keeps the boot the step log belongs to: begin()\'s, then the one a resumed job goes on in; unknown (null) stays null', async () => {
    const stateDir = await makeTempDir();
    const journal = await open(stateDir);
    await journal.begin(makeOffer(ID), T0, BOOT);
    await journal.begin(makeOffer('unknown-boot'), T0, null);
    const reopened = await open(stateDir);
    expect(reopened.get(ID)!.boot).toEqual(BOOT);
    expect(reopened.get('unknown-boot')!.boot).toBeNull();
    await reopened.recordReboot(ID, { requestedAt: '2026-11-28T10:00:05.000Z', bootId: BOOT.bootId, marker: BOOT.marker, resumeAt: 0, stepLabel: 'step 1 ("reboot")' });
    const next = { bootId: 'boot-2', marker: 'marker-of-boot-2' };
    await reopened.recordResumed(ID, next);
    expect((await open(stateDir)).get(ID)!.boot).toEqual(next);
  });

  it('refuses a boot without its marker (quarantined as corrupt)', async () => {
    const stateDir = await makeTempDir();
    const journal = await open(stateDir);
    await journal.begin(makeOffer(ID), T0, BOOT);
    const path = join(stateDir, 'journal', `${encodeFileKey(ID)}.json`);
    const bad = JSON.parse(await readFile(path, 'utf8')) as Record<string, unknown>;
    bad.boot = { bootId: 'boot-1' };
    await writeFile(path, JSON.stringify(bad));
    const log = createRecordingLog();
    expect((await open(stateDir, log)).get(ID)).toBeUndefined();
    expect(log.records.some((r) => r.level === 'warn' && /is corrupt \(marker: expected a string/.test(r.message))).toBe(true);
  });

  it('keeps a REBOOTING job, every step before it and the boot it asked in, across a restart', async () => {
    const stateDir = await makeTempDir();
    const journal = await open(stateDir);
    await journal.begin(makeOffer(ID), T0, BOOT);
    await journal.recordStepStart(ID, 0, 3, 'mark');
    await journal.recordStep(ID, 0, makeStepResult('mark'));
    await journal.recordStepStart(ID, 1, 3, 'reboot');
    await journal.recordStep(ID, 1, makeStepResult('reboot'));
    const rebooting = { requestedAt: '2026-11-28T10:00:05.000Z', bootId: 'boot-a', marker: 'm-1', resumeAt: 2, stepLabel: 'step 2 ("reboot")' };
    await journal.recordReboot(ID, rebooting);
    // the entry holds every step now; the step log is gone
    expect((await readdir(join(stateDir, 'journal'))).sort()).toEqual([`${encodeFileKey(ID)}.json`]);

    const reopened = await open(stateDir);
    const entry = reopened.get(ID)!;
    expect(entry).toMatchObject({ reboots: 1, rebooting, running: [], final: null });
    expect(entry.steps).toEqual([
      { index: 0, result: makeStepResult('mark') },
      { index: 1, result: makeStepResult('reboot') },
    ]);

    // resumed: cleared on disk before the next step, later steps go to a new step log
    await reopened.recordResumed(ID, BOOT);
    await reopened.recordStepStart(ID, 2, 3, 'check');
    await reopened.recordStep(ID, 2, makeStepResult('check'));
    const again = (await open(stateDir)).get(ID)!;
    expect(again).toMatchObject({ reboots: 1, rebooting: null, final: null });
    expect(again.steps.map((s) => s.result.name)).toEqual(['mark', 'reboot', 'check']);
  });

  it('reads entries written before reboots existed as never rebooted', async () => {
    const stateDir = await makeTempDir();
    const journal = await open(stateDir);
    await journal.begin(makeOffer(ID), T0, BOOT);
    const path = join(stateDir, 'journal', `${encodeFileKey(ID)}.json`);
    const old = JSON.parse(await readFile(path, 'utf8')) as Record<string, unknown>;
    delete old.reboots;
    delete old.rebooting;
    delete old.boot;
    await writeFile(path, JSON.stringify(old));
    expect((await open(stateDir)).get(ID)).toMatchObject({ reboots: 0, rebooting: null, boot: null });
  });

  it('journals RESTARTING (kind restart) without counting a reboot; a crash after it finds the job RESTARTING with its steps', async () => {
    const stateDir = await makeTempDir();
    const journal = await open(stateDir);
    await journal.begin(makeOffer(ID), T0, BOOT);
    await journal.recordStepStart(ID, 0, 3, 'install');
    await journal.recordStep(ID, 0, makeStepResult('install'));
    await journal.recordReboot(ID, { kind: 'restart', agentVersion: '0.2.0', requestedAt: '2026-11-28T10:00:05.000Z', bootId: null, marker: 'restart', resumeAt: 1, stepLabel: 'step 1 ("install")' });
    // no close, no flush beyond the awaited write: what kill -9 leaves
    const entry = (await open(stateDir)).get(ID)!;
    expect(entry).toMatchObject({ reboots: 0, running: [], final: null, rebooting: { kind: 'restart', agentVersion: '0.2.0', resumeAt: 1 } });
    expect(entry.steps.map((s) => s.result.name)).toEqual(['install']);
    expect(await readdir(join(stateDir, 'journal'))).toEqual([`${encodeFileKey(ID)}.json`]);
  });

  it('rejects an unknown rebooting kind, naming the field', async () => {
    const stateDir = await makeTempDir();
    const log = createRecordingLog();
    const journal = await open(stateDir);
    await journal.begin(makeOffer(ID), T0, BOOT);
    await journal.recordReboot(ID, { kind: 'restart', requestedAt: '2026-11-28T10:00:05.000Z', bootId: null, marker: 'restart', resumeAt: 0, stepLabel: 'the job' });
    const path = join(stateDir, 'journal', `${encodeFileKey(ID)}.json`);
    const raw = JSON.parse(await readFile(path, 'utf8'));
    raw.rebooting.kind = 'hibernate';
    await writeFile(path, JSON.stringify(raw));
    expect((await open(stateDir, log)).get(ID)).toBeUndefined();
    expect(JSON.stringify(log.records)).toContain('rebooting.kind: expected');
  });

  it('clears REBOOTING with the final report', async () => {
    const stateDir = await makeTempDir();
    const journal = await open(stateDir);
    await journal.begin(makeOffer(ID), T0, BOOT);
    await journal.recordReboot(ID, { requestedAt: '2026-11-28T10:00:05.000Z', bootId: null, marker: 'm', resumeAt: 1, stepLabel: 'step 1' });
    await journal.recordFinal(ID, makeReport('FAILED'));
    expect((await open(stateDir)).get(ID)).toMatchObject({ reboots: 1, rebooting: null, final: makeReport('FAILED') });
  });

  it('recovers an interrupted job with the step that was running and the results so far', async () => {
    const stateDir = await makeTempDir();
    const journal = await open(stateDir);
    await journal.begin(makeOffer(ID), T0, BOOT);
    await journal.recordStepStart(ID, 0, 5, 'a');
    await journal.recordStep(ID, 0, makeStepResult('a'));
    await journal.recordStepStart(ID, 1, 5, 'b');

    const entries = (await open(stateDir)).list();
    expect(entries).toHaveLength(1);
    expect(entries[0]!.final).toBeNull();
    expect(entries[0]!.running).toEqual([{ index: 1, total: 5, name: 'b', startedAt: '2026-11-28T10:00:05.000Z' }]);
    expect(entries[0]!.steps).toEqual([{ index: 0, result: makeStepResult('a') }]);
  });

  it('keeps the step records in the step log, and a torn last record cut anywhere costs only that record', async () => {
    const stateDir = await makeTempDir({ onTmpfs: true });
    const journal = await open(stateDir);
    await journal.begin(makeOffer(ID), T0, BOOT);
    await journal.recordStepStart(ID, 0, 5, 'a');
    await journal.recordStep(ID, 0, makeStepResult('a', 2));
    await journal.recordStepStart(ID, 1, 5, 'b');
    const logPath = join(stateDir, 'journal', `${encodeFileKey(ID)}.steps`);
    const full = await readFile(logPath);
    const started = (name: string, index: number) => ({ index, total: 5, name, startedAt: '2026-11-28T10:00:05.000Z' });
    // what the entry holds after the first n complete records
    const expected = [
      { steps: [], running: [] },
      { steps: [], running: [started('a', 0)] },
      { steps: [{ index: 0, result: makeStepResult('a', 2) }], running: [] },
      { steps: [{ index: 0, result: makeStepResult('a', 2) }], running: [started('b', 1)] },
    ];
    for (let cut = 0; cut <= full.length; cut += 1) {
      await writeFile(logPath, full.subarray(0, cut));
      const log = createRecordingLog();
      const [entry] = (await open(stateDir, log)).list();
      const complete = full.subarray(0, cut).toString().split('\n').length - 1;
      expect({ steps: entry!.steps, running: entry!.running }, `cut at ${cut}`).toEqual(expected[complete]);
      expect(log.messages('warn'), `cut at ${cut}`).toEqual([]);
    }
  }, TRUNCATION_TIMEOUT_MS);

  it('quarantines a step log with a corrupt record, keeping the records before it', async () => {
    const stateDir = await makeTempDir();
    const journal = await open(stateDir);
    await journal.begin(makeOffer(ID), T0, BOOT);
    await journal.recordStepStart(ID, 0, 2, 'a');
    const logPath = join(stateDir, 'journal', `${encodeFileKey(ID)}.steps`);
    await writeFile(logPath, `${await readFile(logPath, 'utf8')}{"type":"end","index":0,"result":{"name":1}}\n{"type":"start","index":1,"total":2,"name":"b","startedAt":"2026-11-28T10:00:05.000Z"}\n`);
    const log = createRecordingLog();
    const [entry] = (await open(stateDir, log)).list();
    expect(entry!.running).toEqual([{ index: 0, total: 2, name: 'a', startedAt: '2026-11-28T10:00:05.000Z' }]);
    expect(entry!.steps).toEqual([]);
    expect(log.messages('warn')).toHaveLength(1);
    expect(log.messages('warn')[0]).toMatch(/^state file .*\.steps is corrupt \(line 2\.result.*kept the 1 record\(s\) before it\); moved it to .*\.steps\.corrupt-/);
  });

  it('quarantines a step log whose entry is gone, and deletes the log once the final is recorded', async () => {
    const stateDir = await makeTempDir();
    const orphan = join(stateDir, 'journal', `${encodeFileKey('gone')}.steps`);
    const journal = await open(stateDir);
    await writeFile(orphan, '{"type":"start","index":0,"total":1,"name":"a","startedAt":"2026-11-28T10:00:05.000Z"}\n');
    const log = createRecordingLog();
    const reopened = await open(stateDir, log);
    expect(log.messages('warn')).toEqual([expect.stringMatching(/step log of a job the journal does not hold/)]);
    await reopened.begin(makeOffer(ID), T0, BOOT);
    await reopened.recordStepStart(ID, 0, 1, 'a');
    await reopened.recordStep(ID, 0, makeStepResult('a'));
    expect((await readdir(join(stateDir, 'journal'))).filter((n) => !n.includes('.corrupt-')).sort()).toEqual(
      [`${encodeFileKey(ID)}.json`, `${encodeFileKey(ID)}.steps`].sort(),
    );
    await reopened.recordFinal(ID, makeReport('SUCCEEDED'));
    expect((await readdir(join(stateDir, 'journal'))).filter((n) => !n.includes('.corrupt-'))).toEqual([`${encodeFileKey(ID)}.json`]);
    const [entry] = (await open(stateDir)).list();
    expect(entry!.steps).toEqual([{ index: 0, result: makeStepResult('a') }]);
    expect(journal.list()).toEqual([]);
  });

  it('keeps a finished entry with its final until removed', async () => {
    const stateDir = await makeTempDir();
    const journal = await open(stateDir);
    await journal.begin(makeOffer(ID), T0, BOOT);
    await journal.recordStepStart(ID, 0, 1, 'a');
    await journal.recordFinal(ID, makeReport('SUCCEEDED'));
    const reopened = await open(stateDir);
    const [entry] = reopened.list();
    expect(entry!.final).toEqual(makeReport('SUCCEEDED'));
    expect(entry!.finishedAt).toBe('2026-11-28T10:00:05.000Z');
    expect(entry!.running).toEqual([]);
    await reopened.remove(ID);
    expect(reopened.list()).toEqual([]);
    expect(await readdir(join(stateDir, 'journal'))).toEqual([]);
    expect((await open(stateDir)).list()).toEqual([]);
  });

  it('records concurrent steps of a parallel group without losing one', async () => {
    const stateDir = await makeTempDir();
    const journal = await open(stateDir);
    await journal.begin(makeOffer(ID), T0, BOOT);
    await Promise.all([0, 1, 2].map((i) => journal.recordStepStart(ID, i, 3, `p${i}`)));
    await Promise.all([2, 0, 1].map((i) => journal.recordStep(ID, i, makeStepResult(`p${i}`))));
    const [entry] = (await open(stateDir)).list();
    expect(entry!.steps.map((s) => [s.index, s.result.name])).toEqual([
      [0, 'p0'],
      [1, 'p1'],
      [2, 'p2'],
    ]);
    expect(entry!.running).toEqual([]);
  });

  it('refuses to begin a job twice and to record an unknown job', async () => {
    const journal = await open(await makeTempDir());
    await journal.begin(makeOffer(ID), T0, BOOT);
    await expect(journal.begin(makeOffer(ID), T0, BOOT)).rejects.toThrow(
      `job ${ID} is already in the journal; it must not run twice`,
    );
    await expect(journal.recordStep('other', 0, makeStepResult('a'))).rejects.toThrow(
      'job other is not in the journal; begin() must come first',
    );
  });

  it('stores hostile job ids inside its directory and reads them back exactly', async () => {
    const stateDir = await makeTempDir();
    const journal = await open(stateDir);
    for (const id of HOSTILE_JOB_IDS) await journal.begin(makeOffer(id), T0, BOOT);
    expect((await readdir(stateDir)).sort()).toEqual(['journal']);
    const names = await readdir(join(stateDir, 'journal'));
    expect(names).toHaveLength(HOSTILE_JOB_IDS.length);
    for (const name of names) expect(name).toMatch(/^[A-Za-z0-9_-]{0,40}-[0-9a-f]{64}\.json$/);
    const ids = (await open(stateDir)).list().map((e) => e.jobId);
    expect(ids.sort()).toEqual([...HOSTILE_JOB_IDS].sort());
  });

  it('removes temp files a crash left and still opens', async () => {
    const stateDir = await makeTempDir();
    const journal = await open(stateDir);
    await journal.begin(makeOffer(ID), T0, BOOT);
    const name = `${encodeFileKey(ID)}.json`;
    await writeFile(join(stateDir, 'journal', `.${name}.tmp-00ff00ff00ff00ff`), '{"version":1,"jo');
    const reopened = await open(stateDir);
    expect(reopened.list().map((e) => e.jobId)).toEqual([ID]);
    expect(await readdir(join(stateDir, 'journal'))).toEqual([name]);
  });

  it('quarantines a file whose job id does not match its name', async () => {
    const stateDir = await makeTempDir();
    const journal = await open(stateDir);
    await journal.begin(makeOffer(ID), T0, BOOT);
    const dir = join(stateDir, 'journal');
    const wrong = join(dir, `${encodeFileKey('other')}.json`);
    await writeFile(wrong, await readFile(join(dir, `${encodeFileKey(ID)}.json`)));
    const log = createRecordingLog();
    const reopened = await open(stateDir, log);
    expect(reopened.list().map((e) => e.jobId)).toEqual([ID]);
    expect(log.messages('warn')).toEqual([
      `state file ${wrong} is corrupt (it holds job "${ID}", whose file name is different); moved it to ${wrong}.corrupt-20261128T100005Z and went on without it`,
    ]);
  });

  it('quarantines an entry truncated to every length and still opens with the other jobs', async () => {
    const stateDir = await makeTempDir({ onTmpfs: true });
    const journal = await open(stateDir);
    await journal.begin(makeOffer(ID), T0, BOOT);
    await journal.recordStepStart(ID, 0, 2, 'a');
    await journal.recordStep(ID, 0, makeStepResult('a', 3));
    await journal.recordFinal(ID, makeReport('FAILED'));
    await journal.begin(makeOffer('survivor'), T0, BOOT);
    const path = join(stateDir, 'journal', `${encodeFileKey(ID)}.json`);
    const full = await readFile(path);
    const checked = await checkEveryTruncation(path, full, async (log) => {
      const reopened = await openJournal({ stateDir, log, clock: createManualClock(T0) });
      expect(reopened.list().map((e) => e.jobId)).toEqual(['survivor']);
    }, { emptyRemoved: true });
    expect(checked).toBe(full.length);
    await writeFile(path, full);
    expect((await open(stateDir)).list().map((e) => e.jobId).sort()).toEqual([ID, 'survivor']);
  }, TRUNCATION_TIMEOUT_MS);
});
