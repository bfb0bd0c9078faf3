// The agent's logger: a thin, typed face over winston. Transports (stderr lines,
// journald) are built by main.ts and passed in; this module imports only escape.ts.
import winston from 'winston';
import type Transport from 'winston-transport';
import { escapeText, truncateText } from './escape.js';

/** Characters of one logged string (message or field) at most; the rest is counted, not written. */
export const MAX_LOGGED_CHARS = 16_384;

/** Structured fields; camelCase names become journald fields (jobId -> JOB_ID). */
export interface LogFields {
  jobId?: string;
  jobName?: string;
  step?: string | number;
  jobStatus?: string;
  cloudStatus?: string | number;
  [key: string]: unknown;
}

/** What every module logs through. */
export interface Log {
  error(message: string, fields?: LogFields): void;
  warn(message: string, fields?: LogFields): void;
  info(message: string, fields?: LogFields): void;
  debug(message: string, fields?: LogFields): void;
  /** A logger that adds `fields` to every entry. */
  child(fields: LogFields): Log;
}

export type LogLevel = 'error' | 'warn' | 'info' | 'debug';

/** Options for createLog. */
export interface LogOptions {
  level: LogLevel;
  transports: Transport[];
  /** Strings that must never reach a log (API keys): replaced by "[redacted]". */
  secrets?: () => readonly string[];
}

/** Builds a Log over winston with the given transports. */
export function createLog(options: LogOptions): Log {
  const secrets = options.secrets ?? (() => []);
  // Secrets out, then every string made one bounded, inert line: messages and
  // fields carry server text (job names, reasons, server messages), which must
  // not forge a log line or reach a terminal as escape sequences.
  const scrub = winston.format((info) => {
    const list = secrets().filter((s) => s.length >= 4);
    for (const key of Object.keys(info)) {
      const value = (info as Record<string, unknown>)[key];
      if (typeof value !== 'string') continue;
      const redacted = list.length === 0 ? value : redactString(value, list);
      (info as Record<string, unknown>)[key] = escapeText(truncateText(redacted, MAX_LOGGED_CHARS));
    }
    return info;
  });
  const logger = winston.createLogger({
    level: options.level,
    levels: { error: 0, warn: 1, info: 2, debug: 3 },
    format: scrub(),
    transports: options.transports,
    exitOnError: false,
  });
  return wrap(logger);
}

/** Replaces every occurrence of each secret in `text`. */
export function redactString(text: string, secrets: readonly string[]): string {
  let out = text;
  for (const secret of secrets) if (secret && out.includes(secret)) out = out.split(secret).join('[redacted]');
  return out;
}

// Entries below the level cost nothing: idle polling logs at debug. Levels and
// transports are fixed when the logger is made, so each level is asked once
// (winston's isLevelEnabled walks the transports on every call).
function wrap(logger: winston.Logger): Log {
  const at = (level: LogLevel) => {
    if (!logger.isLevelEnabled(level)) return (): void => undefined;
    return (message: string, fields?: LogFields): void => {
      logger.log(level, message, fields ?? {});
    };
  };
  return {
    error: at('error'),
    warn: at('warn'),
    info: at('info'),
    debug: at('debug'),
    child: (fields) => wrap(logger.child(fields)),
  };
}

/** A transport that writes readable lines to stderr: `2026-11-28T10:00:00.000Z INFO message key=value`. */
export function createConsoleTransport(stream: NodeJS.WritableStream = process.stderr): Transport {
  return new winston.transports.Stream({
    stream,
    format: winston.format.printf((info) => formatLine(info as Record<string, unknown>)),
  });
}

const SKIP = new Set(['level', 'message', 'timestamp']);

/** Formats one entry as a human-readable line. */
export function formatLine(info: Record<string, unknown>): string {
  const fields = Object.keys(info)
    .filter((k) => !SKIP.has(k) && info[k] !== undefined)
    .map((k) => `${k}=${formatValue(info[k])}`);
  const level = String(info.level).toUpperCase();
  return `${new Date().toISOString()} ${level} ${String(info.message)}${fields.length ? ` ${fields.join(' ')}` : ''}`;
}

function formatValue(value: unknown): string {
  const text = typeof value === 'string' ? value : JSON.stringify(value);
  return /[\s"=]/.test(text ?? '') ? JSON.stringify(text) : String(text);
}

/** A Log that drops everything (tests, quiet commands). */
export function createNullLog(): Log {
  const log: Log = { error() {}, warn() {}, info() {}, debug() {}, child: () => log };
  return log;
}
