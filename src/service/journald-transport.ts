// A winston transport that writes entries to journald with the journal's
// native protocol, so `journalctl -u cloudjobs JOB_ID=<id>` shows one job's
// story and `-o json` carries every structured field. Sent as one datagram per
// entry through the native sender (Node cannot send AF_UNIX datagrams).
import TransportStream from 'winston-transport';
import { formatLine } from '../log/log.js';
import type { DatagramSender } from './native.js';

/** Where journald listens for native-protocol datagrams. */
export const JOURNAL_SOCKET = '/run/systemd/journal/socket';

/** syslog priorities of our levels (sd-daemon.h: LOG_ERR 3, LOG_WARNING 4, LOG_INFO 6, LOG_DEBUG 7). */
export const PRIORITY_OF_LEVEL: Readonly<Record<string, number>> = Object.freeze({ error: 3, warn: 4, info: 6, debug: 7 });

/** Inputs of createJournaldTransport. */
export interface JournaldTransportOptions {
  sender: DatagramSender;
  /** @default JOURNAL_SOCKET */
  socketPath?: string;
  /** SYSLOG_IDENTIFIER of every entry. @default 'cloudjobs' */
  identifier?: string;
  /** Cap of one encoded entry in bytes; MESSAGE is cut to fit. @default 65536 */
  maxEntryBytes?: number;
  /** Cap of one structured field's value in bytes. @default 8192 */
  maxFieldBytes?: number;
  /** Gets the readable line of an entry the journal refused (stderr goes to the journal too under systemd). */
  fallback?: (line: string) => void;
}

// Our own fields; a structured field that maps onto one of them is renamed.
const RESERVED = new Set(['MESSAGE', 'PRIORITY', 'SYSLOG_IDENTIFIER', 'MESSAGE_TRUNCATED_BYTES']);
// Keys winston and our Log add that are not structured fields.
const SKIP_KEYS = new Set(['level', 'message', 'timestamp']);
const MAX_FIELD_NAME = 64;

/** Builds the journald transport for the agent's Log. */
export function createJournaldTransport(options: JournaldTransportOptions): TransportStream {
  const socketPath = options.socketPath ?? JOURNAL_SOCKET;
  const identifier = options.identifier ?? 'cloudjobs';
  const maxEntryBytes = options.maxEntryBytes ?? 65_536;
  const maxFieldBytes = options.maxFieldBytes ?? 8192;
  const fallback = options.fallback;
  return new (class JournaldTransport extends TransportStream {
    override log(info: Record<string, unknown>, callback: () => void): void {
      const entry = encodeJournalEntry(info, { identifier, maxEntryBytes, maxFieldBytes });
      try {
        options.sender.send(socketPath, entry);
      } catch (error) {
        fallback?.(`${formatLine(info)} (journald refused the entry: ${error instanceof Error ? error.message : String(error)})`);
      }
      setImmediate(() => this.emit('logged', info));
      callback();
    }
  })();
}

/** Limits used by encodeJournalEntry. */
export interface EncodeLimits {
  identifier: string;
  maxEntryBytes: number;
  maxFieldBytes: number;
}

/** Encodes one winston entry as a native-protocol journal datagram of at most maxEntryBytes. */
export function encodeJournalEntry(info: Record<string, unknown>, limits: EncodeLimits): Buffer {
  const priority = PRIORITY_OF_LEVEL[String(info.level)] ?? 6;
  const head = [encodeField('PRIORITY', String(priority)), encodeField('SYSLOG_IDENTIFIER', limits.identifier)];
  const extra: Buffer[] = [];
  const seen = new Set<string>();
  for (const key of Object.keys(info)) {
    if (SKIP_KEYS.has(key)) continue;
    const text = stringifyValue(info[key]);
    if (text === undefined) continue;
    let name = toJournalFieldName(key);
    if (name === null) continue;
    if (RESERVED.has(name)) name = `FIELD_${name}`.slice(0, MAX_FIELD_NAME);
    if (seen.has(name)) continue;
    seen.add(name);
    extra.push(encodeField(name, truncateUtf8(text, limits.maxFieldBytes, ' [truncated]')));
  }
  const message = String(info.message ?? '');
  const fixed = head.reduce((n, b) => n + b.length, 0);
  let used = fixed;
  const kept: Buffer[] = [];
  // room for MESSAGE's framing, a truncation note and MESSAGE_TRUNCATED_BYTES
  const reserve = 128;
  for (const field of extra) {
    if (used + field.length + reserve > limits.maxEntryBytes) continue;
    kept.push(field);
    used += field.length;
  }
  const budget = Math.max(0, limits.maxEntryBytes - used - reserve);
  const messageBytes = Buffer.byteLength(message, 'utf8');
  const parts = [...head];
  if (messageBytes <= budget) {
    parts.push(encodeField('MESSAGE', message));
  } else {
    const note = ` [message truncated: ${messageBytes} bytes]`;
    parts.push(encodeField('MESSAGE', truncateUtf8(message, budget, note)));
    parts.push(encodeField('MESSAGE_TRUNCATED_BYTES', String(messageBytes)));
  }
  parts.push(...kept);
  return Buffer.concat(parts);
}

/** Maps a log field key to a journal field name (jobId -> JOB_ID), or null when nothing valid remains. */
export function toJournalFieldName(key: string): string | null {
  const name = key
    .replace(/([a-z0-9])([A-Z])/g, '$1_$2')
    .replace(/([A-Z]+)([A-Z][a-z])/g, '$1_$2')
    .toUpperCase()
    .replace(/[^A-Z0-9_]/g, '_')
    .replace(/^[_0-9]+/, '')
    .slice(0, MAX_FIELD_NAME);
  return name === '' ? null : name;
}

/** Encodes KEY=value\n, or KEY\n<u64le length>value\n when the value holds a newline. */
export function encodeField(name: string, value: string): Buffer {
  if (!value.includes('\n')) return Buffer.from(`${name}=${value}\n`, 'utf8');
  const data = Buffer.from(value, 'utf8');
  const length = Buffer.alloc(8);
  length.writeBigUInt64LE(BigInt(data.length));
  return Buffer.concat([Buffer.from(`${name}\n`, 'utf8'), length, data, Buffer.from('\n')]);
}

/** Cuts text to at most maxBytes of UTF-8 (never splitting a character), ending with note when cut and the note fits. */
export function truncateUtf8(text: string, maxBytes: number, note: string): string {
  const data = Buffer.from(text, 'utf8');
  if (data.length <= maxBytes) return text;
  const noteBytes = Buffer.byteLength(note, 'utf8');
  const suffix = noteBytes <= maxBytes ? note : '';
  let end = maxBytes - Buffer.byteLength(suffix, 'utf8');
  while (end > 0 && ((data[end] ?? 0) & 0xc0) === 0x80) end -= 1;
  return `${data.subarray(0, end).toString('utf8')}${suffix}`;
}

function stringifyValue(value: unknown): string | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint') return String(value);
  if (value instanceof Error) return value.message;
  try {
    return JSON.stringify(value);
  } catch {
    return String(value);
  }
}

/** What shouldUseJournal looks at: $JOURNAL_STREAM and stderr's fstat. */
export interface JournalStreamProbe {
  /** $JOURNAL_STREAM, "<device>:<inode>" of the stream systemd connected. */
  journalStream: string | undefined;
  /** fstat(2) of stderr, or null when stderr is closed. */
  stderr: { dev: number | bigint; ino: number | bigint } | null;
}

/** Decides like systemd's own logic (sd-journal's stderr_is_journal): native journal only when stderr is the stream systemd gave us. */
export function shouldUseJournal(probe: JournalStreamProbe): boolean {
  if (probe.journalStream === undefined || probe.stderr === null) return false;
  const match = /^(\d+):(\d+)$/.exec(probe.journalStream.trim());
  if (!match) return false;
  return BigInt(match[1] ?? '-1') === BigInt(probe.stderr.dev) && BigInt(match[2] ?? '-1') === BigInt(probe.stderr.ino);
}
