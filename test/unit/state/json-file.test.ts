import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createManualClock } from '../../../src/clock/clock.js';
import { formatQuarantineStamp, readJsonFile, writeJsonFile } from '../../../src/state/json-file.js';
import { expectInteger, expectRecord, expectVersion } from '../../../src/state/validate.js';
import { createRecordingLog, makeTempDir, T0 } from './helpers.js';

const validateCounter = (value: unknown): { version: 1; count: number } => {
  const r = expectRecord(value, 'counter');
  expectVersion(r, 1);
  return { version: 1, count: expectInteger(r, 'count', 0) };
};

async function setup(content?: string): Promise<{ dir: string; path: string }> {
  const dir = await makeTempDir();
  const path = join(dir, 'counter.json');
  if (content !== undefined) await writeFile(path, content);
  return { dir, path };
}

describe('readJsonFile', () => {
  it('returns null for a missing file without a warning', async () => {
    const { path } = await setup();
    const log = createRecordingLog();
    expect(await readJsonFile(path, validateCounter, log)).toBeNull();
    expect(log.records).toEqual([]);
  });

  it('returns what writeJsonFile wrote', async () => {
    const { path } = await setup();
    await writeJsonFile(path, { version: 1, count: 7 });
    expect(await readFile(path, 'utf8')).toBe('{"version":1,"count":7}');
    expect(await readJsonFile(path, validateCounter, createRecordingLog())).toEqual({ version: 1, count: 7 });
  });

  it.each([
    ['', 'the file is empty'],
    ['{"version":1,"cou', 'Unterminated string in JSON at position 17'],
    ['{"version":1,"count":', 'Unexpected end of JSON input'],
    ['[1,2]', 'counter: expected an object, got an array'],
    ['{"version":2,"count":1}', 'version: expected 1, got 2'],
    ['{"version":1,"count":-1}', 'count: expected an integer of at least 0, got -1'],
  ])('quarantines %j with one warning naming the file and the reason (%s)', async (content, reason) => {
    const { dir, path } = await setup(content);
    const log = createRecordingLog();
    const clock = createManualClock(T0);
    expect(await readJsonFile(path, validateCounter, log, clock)).toBeNull();
    const target = `${path}.corrupt-20261128T100000Z`;
    expect(log.records).toEqual([
      {
        level: 'warn',
        message: `state file ${path} is corrupt (${reason}); moved it to ${target} and went on without it`,
        fields: { file: path, quarantinedTo: target, reason },
      },
    ]);
    expect(await readdir(dir)).toEqual(['counter.json.corrupt-20261128T100000Z']);
    expect(await readFile(target, 'utf8')).toBe(content);
  });

  it('never overwrites an earlier quarantined file from the same second', async () => {
    const { dir, path } = await setup('x');
    const clock = createManualClock(T0);
    const log = createRecordingLog();
    await readJsonFile(path, validateCounter, log, clock);
    await writeFile(path, 'y');
    await readJsonFile(path, validateCounter, log, clock);
    expect((await readdir(dir)).sort()).toEqual([
      'counter.json.corrupt-20261128T100000Z',
      'counter.json.corrupt-20261128T100000Z-1',
    ]);
    expect(await readFile(`${path}.corrupt-20261128T100000Z-1`, 'utf8')).toBe('y');
  });
});

describe('formatQuarantineStamp', () => {
  it('formats UTC to the second', () => {
    expect(formatQuarantineStamp(Date.parse('2026-01-02T03:04:05.678Z'))).toBe('20260102T030405Z');
  });
});
