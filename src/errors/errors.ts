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
  | 'LOOP_DIED'
  | 'INTERNAL'
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

/** A file system call on one of the agent's own paths failed (state_dir, work_dir, runtime_dir). */
export class StateIoError extends AgentError {
  readonly path: string;
  /** The errno name, e.g. ENOSPC, or null when no system call failed (e.g. a file where a directory belongs). */
  readonly errno: string | null;
  constructor(path: string, message: string, options?: { cause?: unknown; errno?: string | null }) {
    super('STATE_IO', message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.path = path;
    this.errno = options?.errno !== undefined ? options.errno : errnoOf(options?.cause);
  }
}

/** One of the agent's long-lived loops ended while the agent was not stopping. */
export class LoopDiedError extends AgentError {
  readonly loop: string;
  constructor(loop: string, cause: unknown) {
    super('LOOP_DIED', `the ${loop} loop died: ${describeError(cause)}`, { cause });
    this.loop = loop;
  }
}

/** A fault of this device, not of the cloud: what failed, where, and why (errno). */
export interface LocalFault {
  path: string;
  errno: string | null;
  /** One line: "<path>: <errno>: <what happened>". */
  message: string;
}

// errnos that mean the device's storage cannot take the write: full, read-only, failing or locked.
const STORAGE_ERRNOS = new Set(['ENOSPC', 'EDQUOT', 'EROFS', 'EIO', 'EACCES', 'EPERM', 'ENOENT', 'ENOTDIR']);

/**
 * Names a thrown value as a local storage fault (a StateIoError, or a Node
 * system error on a path with one of the storage errnos), or null when it is
 * not one (a cloud failure or a bug).
 */
export function classifyLocalFault(error: unknown): LocalFault | null {
  if (error instanceof StateIoError) {
    return { path: error.path, errno: error.errno, message: formatFault(error.path, error.errno, rootCauseMessage(error)) };
  }
  const sys = error as { code?: unknown; path?: unknown; message?: unknown } | null;
  if (sys && typeof sys.code === 'string' && typeof sys.path === 'string' && STORAGE_ERRNOS.has(sys.code)) {
    return { path: sys.path, errno: sys.code, message: formatFault(sys.path, sys.code, describeError(error)) };
  }
  return null;
}

function formatFault(path: string, errno: string | null, detail: string): string {
  const text = detail.replace(/^[A-Z]+: /, '').replace(/, \w+ '[^']*'$/, '');
  return `${path}: ${errno === null ? text : `${errno}: ${text}`}`;
}

// How deep rootCauseMessage follows `cause`.
const MAX_CAUSE_DEPTH = 16;

// The system error's own words (e.g. "no space left on device") rather than our wrapping sentence.
function rootCauseMessage(error: Error): string {
  let at: unknown = error;
  // bounded: a cause chain may be a cycle (an error that is its own cause)
  for (let depth = 0; depth < MAX_CAUSE_DEPTH && at instanceof Error && at.cause !== undefined; depth += 1) at = at.cause;
  return at === error ? error.message : describeError(at);
}

function errnoOf(cause: unknown): string | null {
  const code = (cause as { code?: unknown } | null)?.code;
  return typeof code === 'string' && /^E[A-Z0-9]+$/.test(code) ? code : null;
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
