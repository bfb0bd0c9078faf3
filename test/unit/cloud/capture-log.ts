// A Log that records entries so tests can assert what was logged.
import type { Log, LogFields } from '../../../src/log/log.js';

/** One recorded entry. */
export interface LogEntry {
  level: 'error' | 'warn' | 'info' | 'debug';
  message: string;
  fields: LogFields;
}

/** Creates a recording Log; every child writes to the same list. */
export function createCaptureLog(): Log & { entries: LogEntry[] } {
  const entries: LogEntry[] = [];
  const make = (base: LogFields): Log => ({
    error: (message, fields) => void entries.push({ level: 'error', message, fields: { ...base, ...fields } }),
    warn: (message, fields) => void entries.push({ level: 'warn', message, fields: { ...base, ...fields } }),
    info: (message, fields) => void entries.push({ level: 'info', message, fields: { ...base, ...fields } }),
    debug: (message, fields) => void entries.push({ level: 'debug', message, fields: { ...base, ...fields } }),
    child: (fields) => make({ ...base, ...fields }),
  });
  return Object.assign(make({}), { entries });
}
