import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createConsoleTransport, createLog, formatLine, redactString } from '../../../src/log/log.js';

function capture(level: 'error' | 'warn' | 'info' | 'debug', secrets: string[] = []) {
  const stream = new PassThrough();
  let text = '';
  stream.on('data', (chunk: Buffer) => (text += chunk.toString('utf8')));
  const log = createLog({ level, transports: [createConsoleTransport(stream)], secrets: () => secrets });
  return { log, text: async () => {
    await new Promise((resolve) => setImmediate(resolve));
    return text;
  } };
}

describe('log', () => {
  it('writes readable lines with fields and drops entries below the level', async () => {
    const { log, text } = capture('info');
    log.debug('not shown', { jobId: 'x' });
    log.info('job done', { jobId: 'j-1', jobName: 'Restart Redis' });
    log.child({ step: 2 }).warn('slow step');
    const lines = (await text()).trim().split('\n');
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatch(/^\d{4}-\d\d-\d\dT[\d:.]+Z INFO job done jobId=j-1 jobName="Restart Redis"$/);
    expect(lines[1]).toMatch(/ WARN slow step step=2$/);
  });

  it('writes debug entries, also through children, when the level is debug', async () => {
    const { log, text } = capture('debug');
    log.debug('polling again', { cloudStatus: 204 });
    log.child({ jobId: 'j-2' }).debug('step output');
    const lines = (await text()).trim().split('\n');
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatch(/ DEBUG polling again cloudStatus=204$/);
    expect(lines[1]).toMatch(/ DEBUG step output jobId=j-2$/);
  });

  it('replaces secrets in messages and fields', async () => {
    const { log, text } = capture('debug', ['0123456789abcdef']);
    log.error('key 0123456789abcdef refused', { header: 'X-Device-API-Key: 0123456789abcdef' });
    const out = await text();
    expect(out).not.toContain('0123456789abcdef');
    expect(out).toContain('key [redacted] refused');
    expect(out).toContain('header="X-Device-API-Key: [redacted]"');
  });

  it('formats values with spaces, quotes or = as JSON strings', () => {
    const line = formatLine({ level: 'info', message: 'm', a: 'plain', b: 'two words', c: { n: 1 } });
    expect(line).toMatch(/ INFO m a=plain b="two words" c="\{\\"n\\":1\}"$/);
    expect(redactString('a-secret-b-secret', ['secret'])).toBe('a-[redacted]-b-[redacted]');
  });
});
