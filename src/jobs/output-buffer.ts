// Bounded capture of one output stream of a step: keeps a head and a tail
// within a byte budget, counts what it dropped, and decodes to a string that is
// valid in JSON and in a Postgres text column whatever bytes the child wrote.
//
// INVARIANTS
// - write() never refuses or delays a chunk: the caller reads the pipe in
//   flowing mode and the child never blocks on a full pipe because of us.
// - Memory held is at most the head budget plus the tail budget, allocated
//   once on first use: nothing is allocated per chunk.
// - head bytes are the first bytes written; tail bytes are the last ones; when
//   nothing was dropped head followed by tail is the whole stream.

/** What a buffer holds, decoded. */
export interface CapturedText {
  text: string;
  /** Bytes the child wrote, including dropped ones. */
  bytes: number;
  /** Whether some bytes were dropped (the text then carries the omission mark). */
  truncated: boolean;
  /** Lines written: newlines, plus one for a final unterminated line (0 when not counted). */
  lines: number;
}

/** A bounded sink for one stream. */
export interface OutputBuffer {
  write(chunk: Buffer): void;
  /** The text kept so far; can be called any time, also while writes go on. */
  capture(): CapturedText;
}

const NEWLINE = 0x0a;

/**
 * Creates a buffer keeping at most `maxBytes` (half head, half tail) of a
 * stream. Lines are counted only with `countLines` (stderr, for allowStdErr):
 * counting costs a scan per newline, which dominates a flood of short lines.
 */
export function createOutputBuffer(maxBytes: number, options: { countLines?: boolean } = {}): OutputBuffer {
  const countLines = options.countLines ?? true;
  const headCap = Math.ceil(maxBytes / 2);
  const tailCap = maxBytes - headCap;
  // Allocated on first use (most steps write little or nothing); the tail is a
  // ring, so a flood of output allocates nothing per chunk.
  let head: Buffer | null = null;
  let headLen = 0;
  let ring: Buffer | null = null;
  let ringEnd = 0; // where the next tail byte goes
  let tailLen = 0; // bytes of the ring in use (<= tailCap)
  let total = 0;
  let newlines = 0;
  let lastByte = -1;

  const keepTail = (rest: Buffer): void => {
    ring ??= Buffer.allocUnsafe(tailCap);
    const piece = rest.length > tailCap ? rest.subarray(rest.length - tailCap) : rest;
    const first = Math.min(piece.length, tailCap - ringEnd);
    piece.copy(ring, ringEnd, 0, first);
    piece.copy(ring, 0, first);
    ringEnd = (ringEnd + piece.length) % tailCap;
    tailLen = Math.min(tailCap, tailLen + piece.length);
  };

  const tailBytes = (): Buffer => {
    if (ring === null || tailLen === 0) return Buffer.alloc(0);
    const start = (ringEnd - tailLen + tailCap) % tailCap;
    if (start + tailLen <= tailCap) return Buffer.from(ring.subarray(start, start + tailLen));
    return Buffer.concat([ring.subarray(start), ring.subarray(0, ringEnd)]);
  };

  return {
    write(chunk) {
      if (chunk.length === 0) return;
      total += chunk.length;
      if (countLines) newlines += countNewlines(chunk);
      lastByte = chunk[chunk.length - 1] ?? lastByte;
      let rest = chunk;
      if (headLen < headCap) {
        head ??= Buffer.allocUnsafe(headCap);
        const take = Math.min(headCap - headLen, rest.length);
        rest.copy(head, headLen, 0, take);
        headLen += take;
        rest = rest.subarray(take);
      }
      if (rest.length === 0 || tailCap === 0) return;
      keepTail(rest);
    },
    capture() {
      const lines = countLines ? newlines + (total > 0 && lastByte !== NEWLINE ? 1 : 0) : 0;
      const tailKept = tailBytes();
      const headKept = head === null ? Buffer.alloc(0) : head.subarray(0, headLen);
      const dropped = total - headKept.length - tailKept.length;
      if (dropped === 0) {
        return { text: decodeOutput(Buffer.concat([headKept, tailKept])), bytes: total, truncated: false, lines };
      }
      const headShown = headKept.subarray(0, completeUtf8Prefix(headKept));
      const tailShown = tailKept.subarray(skipUtf8Continuations(tailKept));
      const omitted = total - headShown.length - tailShown.length;
      const text = `${decodeOutput(headShown)}\n[... ${omitted} bytes omitted ...]\n${decodeOutput(tailShown)}`;
      return { text, bytes: total, truncated: true, lines };
    },
  };
}

/**
 * Decodes bytes as UTF-8: invalid sequences become U+FFFD and NUL becomes
 * U+2400 (a Postgres text column refuses NUL; JSON would carry it, the server
 * would not).
 */
export function decodeOutput(bytes: Uint8Array): string {
  return new TextDecoder('utf-8', { fatal: false }).decode(bytes).replace(/\0/g, '\u2400');
}

function countNewlines(chunk: Buffer): number {
  let count = 0;
  let at = chunk.indexOf(NEWLINE);
  while (at !== -1) {
    count += 1;
    at = chunk.indexOf(NEWLINE, at + 1);
  }
  return count;
}

// Length of the longest prefix that does not end inside a UTF-8 sequence.
function completeUtf8Prefix(bytes: Buffer): number {
  const end = bytes.length;
  for (let back = 1; back <= Math.min(4, end); back += 1) {
    const byte = bytes[end - back] ?? 0;
    if ((byte & 0xc0) === 0x80) continue; // continuation: keep looking for the lead byte
    const need = byte >= 0xf0 ? 4 : byte >= 0xe0 ? 3 : byte >= 0xc0 ? 2 : 1;
    return need > back ? end - back : end;
  }
  return end;
}

// Number of leading continuation bytes (the rest of a character cut at the front).
function skipUtf8Continuations(bytes: Buffer): number {
  let skip = 0;
  while (skip < 3 && skip < bytes.length && ((bytes[skip] ?? 0) & 0xc0) === 0x80) skip += 1;
  return skip;
}
