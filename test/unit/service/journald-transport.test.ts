import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createLog } from '../../../src/log/log.js';
import {
  createJournaldTransport,
  encodeField,
  encodeJournalEntry,
  shouldUseJournal,
  toJournalFieldName,
  truncateUtf8,
} from '../../../src/service/journald-transport.js';
import { createTestSender, parseJournalDatagram, startDatagramReceiver, type DatagramReceiver } from './datagram-helpers.js';

const limits = { identifier: 'cloudjobs', maxEntryBytes: 65_536, maxFieldBytes: 8192 };

describe('journald transport over a real AF_UNIX datagram socket', () => {
  let receiver: DatagramReceiver;
  beforeEach(async () => {
    receiver = await startDatagramReceiver();
  });
  afterEach(async () => {
    await receiver.close();
  });

  it('sends each entry as one native-protocol datagram with PRIORITY, identifier, MESSAGE and upper-snake fields', async () => {
    const transport = createJournaldTransport({ sender: createTestSender(), socketPath: receiver.path });
    const log = createLog({ level: 'debug', transports: [transport], secrets: () => ['s3cr3t-key'] });
    log.child({ jobId: 'job-1', jobName: 'Restart Redis' }).info('step finished', {
      step: 2,
      jobStatus: 'IN_PROGRESS',
      cloudStatus: 200,
    });
    log.error('cloud said 401 for key s3cr3t-key', { cloudStatus: 401 });
    // server text (a job name, a reason) arrives escaped: one line, no terminal escapes (issue 16 item 5)
    log.warn('stderr was:\nline one\n\u001b[31mline two', { jobName: 'evil\n2026-01-01T00:00:00.000Z ERROR forged' });
    log.debug('tick');
    const entries = [];
    for (let i = 0; i < 4; i += 1) entries.push(parseJournalDatagram(await receiver.next()));
    expect(entries[0]).toEqual([
      ['PRIORITY', '6'],
      ['SYSLOG_IDENTIFIER', 'cloudjobs'],
      ['MESSAGE', 'step finished'],
      ['JOB_ID', 'job-1'],
      ['JOB_NAME', 'Restart Redis'],
      ['STEP', '2'],
      ['JOB_STATUS', 'IN_PROGRESS'],
      ['CLOUD_STATUS', '200'],
    ]);
    expect(entries[1]).toEqual([
      ['PRIORITY', '3'],
      ['SYSLOG_IDENTIFIER', 'cloudjobs'],
      ['MESSAGE', 'cloud said 401 for key [redacted]'],
      ['CLOUD_STATUS', '401'],
    ]);
    expect(entries[2]).toEqual([
      ['PRIORITY', '4'],
      ['SYSLOG_IDENTIFIER', 'cloudjobs'],
      ['MESSAGE', 'stderr was:\\nline one\\n\\u001b[31mline two'],
      ['JOB_NAME', 'evil\\n2026-01-01T00:00:00.000Z ERROR forged'],
    ]);
    expect(entries[3]).toEqual([
      ['PRIORITY', '7'],
      ['SYSLOG_IDENTIFIER', 'cloudjobs'],
      ['MESSAGE', 'tick'],
    ]);
  });

  it('writes the readable line to the fallback when the journal socket refuses the entry', async () => {
    const lines: string[] = [];
    const transport = createJournaldTransport({
      sender: createTestSender(),
      socketPath: `${receiver.path}-missing`,
      fallback: (line) => void lines.push(line),
    });
    const log = createLog({ level: 'info', transports: [transport] });
    log.info('hello', { jobId: 'j9' });
    await new Promise((resolve) => setImmediate(resolve));
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^\d{4}-\d\d-\d\dT\S+Z INFO hello jobId=j9 \(journald refused the entry: sendto \S+-missing failed: FileNotFoundError: \[Errno 2\] No such file or directory\)$/);
    expect(receiver.drain()).toEqual([]);
  });
});

describe('encodeJournalEntry', () => {
  it('uses the length-prefixed form for values with a newline', () => {
    const data = encodeField('MESSAGE', 'a\nb');
    expect(data).toEqual(Buffer.from([...Buffer.from('MESSAGE\n'), 3, 0, 0, 0, 0, 0, 0, 0, ...Buffer.from('a\nb\n')]));
    expect(encodeField('JOB_ID', 'x')).toEqual(Buffer.from('JOB_ID=x\n'));
  });

  it('caps the entry: cuts MESSAGE and says so', () => {
    const message = 'é'.repeat(40_000);
    const data = encodeJournalEntry({ level: 'info', message, jobId: 'j1' }, limits);
    expect(data.length).toBeLessThanOrEqual(65_536);
    const fields = new Map(parseJournalDatagram(data));
    expect(fields.get('MESSAGE_TRUNCATED_BYTES')).toBe('80000');
    expect(fields.get('JOB_ID')).toBe('j1');
    const cut = fields.get('MESSAGE') ?? '';
    expect(cut.endsWith(' [message truncated: 80000 bytes]')).toBe(true);
    expect(cut.startsWith('éé')).toBe(true);
    expect(cut).not.toContain('\uFFFD');
  });

  it('caps each structured field and renders objects as JSON', () => {
    const data = encodeJournalEntry(
      { level: 'warn', message: 'm', stdout: 'x'.repeat(10_000), details: { a: 1 }, err: new Error('bad'), none: undefined },
      limits,
    );
    const fields = new Map(parseJournalDatagram(data));
    expect(fields.get('STDOUT')).toBe(`${'x'.repeat(8192 - 12)} [truncated]`);
    expect(fields.get('DETAILS')).toBe('{"a":1}');
    expect(fields.get('ERR')).toBe('bad');
    expect(fields.has('NONE')).toBe(false);
  });

  it('never lets a structured field overwrite PRIORITY, MESSAGE or the identifier', () => {
    const data = encodeJournalEntry({ level: 'info', message: 'm', priority: 'high', syslogIdentifier: 'evil' }, limits);
    expect(parseJournalDatagram(data)).toEqual([
      ['PRIORITY', '6'],
      ['SYSLOG_IDENTIFIER', 'cloudjobs'],
      ['MESSAGE', 'm'],
      ['FIELD_PRIORITY', 'high'],
      ['FIELD_SYSLOG_IDENTIFIER', 'evil'],
    ]);
  });
});

describe('toJournalFieldName', () => {
  it('maps camelCase keys to journal field names', () => {
    expect(toJournalFieldName('jobId')).toBe('JOB_ID');
    expect(toJournalFieldName('jobName')).toBe('JOB_NAME');
    expect(toJournalFieldName('step')).toBe('STEP');
    expect(toJournalFieldName('jobStatus')).toBe('JOB_STATUS');
    expect(toJournalFieldName('cloudStatus')).toBe('CLOUD_STATUS');
    expect(toJournalFieldName('HTTPStatus')).toBe('HTTP_STATUS');
    expect(toJournalFieldName('retry-after.s')).toBe('RETRY_AFTER_S');
    expect(toJournalFieldName('_PID')).toBe('PID');
    expect(toJournalFieldName('2fa')).toBe('FA');
    expect(toJournalFieldName('__')).toBeNull();
    expect(toJournalFieldName('a'.repeat(100))).toBe('A'.repeat(64));
  });
});

describe('truncateUtf8', () => {
  it('never splits a character', () => {
    expect(truncateUtf8('ab€cd', 4, '')).toBe('ab');
    expect(truncateUtf8('ab€cd', 5, '')).toBe('ab€');
    expect(truncateUtf8('abcdef', 5, '…')).toBe('ab…');
    expect(truncateUtf8('abc', 3, '…')).toBe('abc');
    expect(truncateUtf8('abcdef', 2, ' [cut]')).toBe('ab');
  });
});

describe('shouldUseJournal', () => {
  it('uses the journal only when JOURNAL_STREAM names stderr', () => {
    expect(shouldUseJournal({ journalStream: '8:12345', stderr: { dev: 8, ino: 12345 } })).toBe(true);
    expect(shouldUseJournal({ journalStream: '8:12345', stderr: { dev: 8n, ino: 12345n } })).toBe(true);
    expect(shouldUseJournal({ journalStream: '8:12345', stderr: { dev: 8, ino: 999 } })).toBe(false);
    expect(shouldUseJournal({ journalStream: undefined, stderr: { dev: 8, ino: 12345 } })).toBe(false);
    expect(shouldUseJournal({ journalStream: 'garbage', stderr: { dev: 8, ino: 12345 } })).toBe(false);
    expect(shouldUseJournal({ journalStream: '8:12345', stderr: null })).toBe(false);
  });
});
