// The agent's error tree: every error we raise has a stable `code` that logs,
// reports and exit codes can rely on; subclasses carry context and `cause`.

export type ErrorCode =
  | 'CONFIG'
  | 'USAGE'
  | 'CLOUD_HTTP'
  | 'CLOUD_NETWORK'
  | 'CLOUD_TLS'
  | 'CLOUD_PROTOCOL'
  | 'CLOUD_AUTH'
  | 'JOB_INVALID'
  | 'STATE_CORRUPT'
  | 'STATE_IO'
  | 'REGISTRATION'
  | 'NATIVE'
  | 'ABORTED';

/** Base class of every error the agent raises on purpose. */
export class AgentError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
  }
}

/** One problem found in the configuration. */
export interface ConfigProblem {
  /** `section.key`, or the file/variable when no key applies. */
  key: string;
  /** The expected form, e.g. "a duration such as 30s or 5m". */
  expected: string;
  /** The value seen, already redacted when the key is secret. */
  seen: string;
  /** Extra advice such as "did you mean interval?". */
  hint?: string;
}

/** The configuration did not parse; lists every problem at once. */
export class ConfigError extends AgentError {
  readonly problems: readonly ConfigProblem[];
  constructor(problems: readonly ConfigProblem[], options?: { cause?: unknown }) {
    super('CONFIG', formatProblems(problems), options);
    this.problems = problems;
  }
}

/** Formats config problems one per line, naming key, expected form and value seen. */
export function formatProblems(problems: readonly ConfigProblem[]): string {
  const lines = problems.map(
    (p) => `${p.key}: expected ${p.expected}, got ${p.seen}${p.hint ? ` (${p.hint})` : ''}`,
  );
  return `invalid configuration (${problems.length} problem${problems.length === 1 ? '' : 's'}):\n  ${lines.join('\n  ')}`;
}

/** The command line was wrong. */
export class UsageError extends AgentError {
  constructor(message: string) {
    super('USAGE', message);
  }
}

/** A job document failed validation; every problem is listed. */
export class JobValidationError extends AgentError {
  readonly problems: readonly string[];
  constructor(problems: readonly string[]) {
    super('JOB_INVALID', problems.join('; '));
    this.problems = problems;
  }
}

/** A state file could not be read back as written; it was moved aside. */
export class StateCorruptError extends AgentError {
  readonly file: string;
  constructor(file: string, message: string, options?: { cause?: unknown }) {
    super('STATE_CORRUPT', `${file}: ${message}`, options);
    this.file = file;
  }
}

/** Thrown by waits and loops that were stopped through an AbortSignal. */
export class AbortedError extends AgentError {
  constructor(message = 'aborted') {
    super('ABORTED', message);
  }
}

/** Returns a one-line message for any thrown value. */
export function describeError(error: unknown): string {
  if (error instanceof Error) return error.message;
  return String(error);
}
