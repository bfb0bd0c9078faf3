import { describe, expect, it } from 'vitest';
import { createOutputBuffer, decodeOutput } from '../../../src/jobs/output-buffer.js';

describe('createOutputBuffer', () => {
  it('keeps everything within the budget, in order, across chunks', () => {
    const buffer = createOutputBuffer(16);
    buffer.write(Buffer.from('hello\n'));
    buffer.write(Buffer.from('world'));
    expect(buffer.capture()).toEqual({ text: 'hello\nworld', bytes: 11, truncated: false, lines: 2 });
  });

  it('keeps exactly the budget without a mark', () => {
    const buffer = createOutputBuffer(8);
    buffer.write(Buffer.from('abcdefgh'));
    expect(buffer.capture()).toEqual({ text: 'abcdefgh', bytes: 8, truncated: false, lines: 1 });
  });

  it('keeps head and tail and counts what it dropped', () => {
    const buffer = createOutputBuffer(8);
    for (const piece of ['0123', '4567', '89ab', 'cdef']) buffer.write(Buffer.from(piece));
    expect(buffer.capture()).toEqual({ text: '0123\n[... 8 bytes omitted ...]\ncdef', bytes: 16, truncated: true, lines: 1 });
  });

  it('keeps the tail right when one chunk is larger than the whole budget', () => {
    const buffer = createOutputBuffer(6);
    buffer.write(Buffer.from('abcdefghijklmnop'));
    expect(buffer.capture().text).toBe('abc\n[... 10 bytes omitted ...]\nnop');
  });

  it('never splits a UTF-8 character at either cut', () => {
    const buffer = createOutputBuffer(8);
    // 20 bytes: "aé€" = 61 c3a9 e282ac, ten x, then "€b" = e282ac 62
    buffer.write(Buffer.from('aé€xxxxxxxxxx€b', 'utf8'));
    const captured = buffer.capture();
    // head budget 4 bytes: "aé" (3) + first byte of "€" → cut back to "aé"
    // tail budget 4 bytes: "x€b" would be 5; last 4 are e2 82 ac 62 = "€b"
    expect(captured.text).toBe('aé\n[... 13 bytes omitted ...]\n€b');
    expect(captured.text).not.toContain('\uFFFD');
  });

  it('skips continuation bytes at the start of the tail', () => {
    const buffer = createOutputBuffer(4);
    buffer.write(Buffer.from('ab----é', 'utf8')); // tail budget 2 = c3 a9 = "é"; 3 would cut it
    const buffer2 = createOutputBuffer(6);
    buffer2.write(Buffer.from('abc----€', 'utf8')); // tail budget 3 = "€" exactly
    const buffer3 = createOutputBuffer(4);
    buffer3.write(Buffer.from('ab----€', 'utf8')); // tail budget 2 = 82 ac: both continuation bytes skipped
    expect(buffer.capture().text).toBe('ab\n[... 4 bytes omitted ...]\né');
    expect(buffer2.capture().text).toBe('abc\n[... 4 bytes omitted ...]\n€');
    expect(buffer3.capture().text).toBe('ab\n[... 7 bytes omitted ...]\n');
  });

  it('counts lines: newlines plus an unterminated last line', () => {
    const a = createOutputBuffer(1024);
    a.write(Buffer.from('one\ntwo\n'));
    const b = createOutputBuffer(1024);
    b.write(Buffer.from('one\ntwo'));
    const c = createOutputBuffer(1024);
    expect(a.capture().lines).toBe(2);
    expect(b.capture().lines).toBe(2);
    expect(c.capture().lines).toBe(0);
  });

  it('counts lines in dropped output too', () => {
    const buffer = createOutputBuffer(4);
    buffer.write(Buffer.from('x\n'.repeat(1000)));
    expect(buffer.capture()).toMatchObject({ lines: 1000, bytes: 2000, truncated: true });
  });

  it('keeps the first and the last bytes of any stream, whatever the chunking (ring wrap-around)', () => {
    let seed = 7;
    const random = (n: number): number => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % n;
    };
    for (let round = 0; round < 300; round += 1) {
      const budget = 2 + random(40);
      const size = random(200);
      const stream = Buffer.from(Array.from({ length: size }, (_, i) => 0x41 + ((i * 7 + round) % 26)));
      const buffer = createOutputBuffer(budget, { countLines: false });
      for (let at = 0; at < size; ) {
        const length = Math.min(size - at, random(budget * 2) + 1);
        buffer.write(stream.subarray(at, at + length));
        // capture() while writes go on must not disturb what is kept
        if (random(4) === 0) buffer.capture();
        at += length;
      }
      const headCap = Math.ceil(budget / 2);
      const tailCap = budget - headCap;
      const expected =
        size <= budget
          ? stream.toString()
          : `${stream.subarray(0, headCap).toString()}\n[... ${size - budget} bytes omitted ...]\n${stream.subarray(size - tailCap).toString()}`;
      expect(buffer.capture(), `round ${round}: budget ${budget}, ${size} bytes`).toEqual({
        text: expected,
        bytes: size,
        truncated: size > budget,
        lines: 0,
      });
    }
  });

  it('holds a bounded amount whatever volume is written', () => {
    const buffer = createOutputBuffer(4096);
    const chunk = Buffer.alloc(65536, 0x41);
    for (let i = 0; i < 2048; i += 1) buffer.write(chunk); // 128 MiB
    const captured = buffer.capture();
    expect(captured.bytes).toBe(128 * 1048576);
    expect(captured.text).toBe(`${'A'.repeat(2048)}\n[... ${128 * 1048576 - 4096} bytes omitted ...]\n${'A'.repeat(2048)}`);
  });
});

describe('decodeOutput', () => {
  it('replaces invalid UTF-8 with U+FFFD and NUL with U+2400', () => {
    expect(decodeOutput(Buffer.from([0x61, 0x00, 0xff, 0x62]))).toBe('a\u2400\uFFFDb');
  });
});

describe('createOutputBuffer without line counting (stdout)', () => {
  it('keeps the same text and bytes but counts no lines', () => {
    const counted = createOutputBuffer(64);
    const uncounted = createOutputBuffer(64, { countLines: false });
    for (const chunk of ['a\nb\n', 'c\n'.repeat(40), 'tail']) {
      counted.write(Buffer.from(chunk));
      uncounted.write(Buffer.from(chunk));
    }
    expect(counted.capture().lines).toBe(43);
    expect(uncounted.capture()).toEqual({ ...counted.capture(), lines: 0 });
  });
});
