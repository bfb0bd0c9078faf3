// [metrics] listen: HOST:PORT for a local HTTP endpoint. The host is an IP
// address or localhost (no name resolution at start: the address must be
// the one bound), an IPv6 address in brackets; the port 1 to 65535.
import { isIP } from 'node:net';
import type { Parsed } from './parse-value.js';

/** A parsed listen address. */
export interface ListenAddress {
  /** The host as net.Server#listen takes it (IPv6 without brackets). */
  host: string;
  port: number;
}

/** The form of the value, for config messages. */
export const LISTEN_FORM = 'empty, or HOST:PORT with an IP address or localhost, e.g. 127.0.0.1:9464 or [::1]:9464';

/** Parses HOST:PORT; empty text is no address (null). */
export function parseListenAddress(text: string): Parsed<ListenAddress | null> {
  const value = text.trim();
  if (value === '') return { ok: true, value: null };
  const match = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(value);
  if (!match) return { ok: false, expected: LISTEN_FORM };
  const host = match[1] ?? (match[2] as string);
  const port = Number(match[3]);
  if (!(port >= 1 && port <= 65_535)) return { ok: false, expected: LISTEN_FORM, hint: `port ${match[3]} is not from 1 to 65535` };
  const family = isIP(host);
  if (match[1] !== undefined ? family !== 6 : family !== 4 && host !== 'localhost') {
    return { ok: false, expected: LISTEN_FORM, hint: `${host} is not an IP address` };
  }
  return { ok: true, value: { host, port } };
}
