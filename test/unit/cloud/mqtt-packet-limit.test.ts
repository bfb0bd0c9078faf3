import { describe, expect, it } from 'vitest';
import { createPacketLimiter } from '../../../src/cloud/mqtt-packet-limit.js';

// A PUBLISH fixed header declaring `remaining` bytes after it.
function header(remaining: number): Buffer {
  const bytes = [0x30];
  let left = remaining;
  do {
    let byte = left % 128;
    left = Math.floor(left / 128);
    if (left > 0) byte |= 0x80;
    bytes.push(byte);
  } while (left > 0);
  return Buffer.from(bytes);
}
const packet = (remaining: number): Buffer => Buffer.concat([header(remaining), Buffer.alloc(remaining, 7)]);

describe('createPacketLimiter', () => {
  it('lets packets up to the limit through, several per chunk and split anywhere', () => {
    const limiter = createPacketLimiter(1024);
    const stream = Buffer.concat([Buffer.from([0x20, 0x02, 0, 0]), packet(100), packet(1021), packet(0), packet(300)]);
    for (let at = 0; at < stream.length; at += 7) expect(limiter.feed(stream.subarray(at, at + 7))).toBeNull();
    expect(createPacketLimiter(1024).feed(stream)).toBeNull();
  });

  it('refuses a packet over the limit at its header, before its body arrives', () => {
    expect(createPacketLimiter(1024).feed(header(1022))).toEqual({ bytes: 1025 });
    expect(createPacketLimiter(65_536).feed(header(200 * 1024 * 1024))).toEqual({ bytes: 200 * 1024 * 1024 + 5 });
    const limiter = createPacketLimiter(65_536);
    expect(limiter.feed(Buffer.concat([packet(10), header(70_000).subarray(0, 2)]))).toBeNull();
    expect(limiter.feed(header(70_000).subarray(2))).toEqual({ bytes: 70_004 });
  });

  it('refuses a length field longer than four bytes', () => {
    expect(createPacketLimiter(1 << 30).feed(Buffer.from([0x30, 0xff, 0xff, 0xff, 0xff, 0x01]))).toEqual({ bytes: null });
  });
});
