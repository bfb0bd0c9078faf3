// Server text shown safely (issue 16 item 5): one escaping function for logs,
// status, history and journal fields.
import { describe, expect, it } from 'vitest';
import { escapeJsonText, escapeText, showText, truncateText } from '../../../src/log/escape.js';
import { createConsoleTransport, createLog, MAX_LOGGED_CHARS } from '../../../src/log/log.js';
import { PassThrough } from 'node:stream';

describe('escapeText', () => {
  it('leaves ordinary text alone, Windows paths and Unicode included', () => {
    expect(escapeText('Restart Redis – café C:\\temp')).toBe('Restart Redis – café C:\\temp');
  });

  it('writes newlines, ESC, DEL, C1 controls, line separators and bidi overrides as escapes', () => {
    expect(escapeText('a\nb\r\tc\u001b[31md\u007f\u009b\u2028\u202e\u2066')).toBe(
      'a\\nb\\r\\tc\\u001b[31md\\u007f\\u009b\\u2028\\u202e\\u2066',
    );
  });

  it('doubles backslashes when it escapes, so the escaped text reads back unambiguously; escaping twice changes nothing', () => {
    const once = escapeText('x\\n\ny');
    expect(once).toBe('x\\\\n\\ny');
    expect(escapeText(once)).toBe(once);
  });
});

describe('truncateText and showText', () => {
  it('keeps at most max characters with a count of the rest, never splitting a surrogate pair', () => {
    expect(truncateText('abcdef', 6)).toBe('abcdef');
    expect(truncateText('abcdef', 4)).toBe('abcd…[2 more characters]');
    expect(truncateText('ab😀cd', 3)).toBe('ab…[4 more characters]');
  });

  it('showText bounds, then escapes', () => {
    expect(showText('x\n'.repeat(400), 4)).toBe('x\\nx\\n…[796 more characters]');
  });
});

describe('escapeJsonText', () => {
  it('escapes what JSON.stringify leaves raw and keeps the same JSON', () => {
    const value = { name: 'a\u009b31mb\u2028c\u001b' };
    const json = escapeJsonText(JSON.stringify(value));
    expect(json).toBe('{"name":"a\\u009b31mb\\u2028c\\u001b"}');
    expect(JSON.parse(json)).toEqual(value);
  });
});

describe('log lines carry server text inert and bounded', () => {
  function capture(): { log: ReturnType<typeof createLog>; lines: () => string[] } {
    const stream = new PassThrough();
    let text = '';
    stream.on('data', (chunk: Buffer) => (text += chunk.toString('utf8')));
    const log = createLog({ level: 'info', transports: [createConsoleTransport(stream)] });
    return { log, lines: () => text.split('\n').filter((l) => l !== '') };
  }

  it('a job name with "\\n<timestamp> ERROR ..." stays on its own line, escaped', async () => {
    const { log, lines } = capture();
    const name = 'update\n2026-12-01T00:00:00.000Z ERROR cloudjobs: device compromised\u001b[2J';
    log.info(`received job ${name}`, { jobName: name });
    await new Promise((resolve) => setImmediate(resolve));
    expect(lines()).toHaveLength(1);
    expect(lines()[0]).toMatch(/^\S+ INFO received job update\\n2026-12-01T00:00:00.000Z ERROR cloudjobs: device compromised\\u001b\[2J jobName=/);
    expect(lines()[0]).not.toContain('\u001b');
  });

  it('a 10 MB string is logged as at most MAX_LOGGED_CHARS characters', async () => {
    const { log, lines } = capture();
    log.info('x'.repeat(10_000_000));
    await new Promise((resolve) => setImmediate(resolve));
    expect(lines()[0]!.length).toBeLessThan(MAX_LOGGED_CHARS + 100);
    expect(lines()[0]).toContain(`…[${10_000_000 - MAX_LOGGED_CHARS} more characters]`);
  });
});
