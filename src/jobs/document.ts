// Validates a job document (test/cloud/CONTRACT.md "Job document (version 1.0)")
// into a NormalizedJob before anything runs, or throws JobValidationError
// listing every problem found, each naming the step and the field.
//
// Choices where AWS IoT Device Client, the Iotistic cloud and STYLE.md differ
// or say nothing (the README repeats them for users):
// - Both step shapes are accepted: AWS `{"action": {...}}` and the flattened
//   Iotistic `{"name", "type", "input", ...}`; a step with `action` and also a
//   flattened `type`/`input` is ambiguous and refused.
// - includeStdOut defaults to false, as in AWS (its PlainJobDocument starts
//   with includeStdOut{false}); true/false and the strings "true"/"false" are
//   accepted. ignoreStepFailure and input.shell take the same four values.
// - allowStdErr must be a JSON integer >= 0; a numeric string such as "2" is
//   refused (AWS sends numbers and silently ignores strings, which would mean
//   0 there: refusing says so instead of guessing).
// - name is optional although AWS requires it (the seed guide's example has
//   none): an unnamed step is "step N", a parallel member "step N.M".
// - An empty runAsUser, input.path or name means "not given" (AWS's managed
//   templates send `"runAsUser": ""` and `"path": ""`).
// - run_as_user is always allowed (it is the admin's own setting); any other
//   runAsUser, root included, only when allowed_users lists it. A user that
//   does not exist rejects the job: there is no fallback to the agent's user.
// - conditions are checked for shape like AWS does (key, value) and never
//   evaluated.
// - Unknown fields anywhere (e.g. "_comment") are ignored, so documents
//   written for newer agents still run here.
// - The step limit counts parallel members and finalStep; past it the steps
//   are not checked one by one (the job is refused anyway).
import { isNestedDeeperThan, MAX_DOCUMENT_DEPTH } from '../contract/limits.js';
import { JobValidationError } from '../errors/errors.js';
import type { JobOffer } from '../contract/types.js';
import { applyLimitRequest, readLimitRequest, type JobLimits } from './limits.js';
import { checkHandlerName, resolveHandler } from './resolve-handler.js';
import { splitCommand } from './split-command.js';
import type { NormalizedJob, StepNode, StepSpec } from './types.js';
import type { UserInfo } from './users.js';

/** What validation needs from the configuration and the system. */
export interface ValidateOptions {
  /** `[jobs] run_as_user`: the user of steps that name none. */
  runAsUser: string;
  /** `[jobs] allowed_users`; empty means only runAsUser. runAsUser itself is always allowed. */
  allowedUsers: readonly string[];
  /** `[jobs] handler_dirs`, searched in order. */
  handlerDirs: readonly string[];
  /** `[jobs] default_timeout` in ms, for offers without timeout_seconds. */
  defaultTimeoutMs: number;
  /** users.ts lookupUser (injected so tests and `cloudjobs exec` share it). */
  lookupUser: (name: string) => Promise<UserInfo | null>;
  /** `[jobs] memory_max`, `tasks_max`, `cpu_quota`: the most a document's "limits" may ask for. @default no limits */
  limitCeiling?: JobLimits;
}

/** Limits on a job document; the README documents the same numbers. */
export const DOCUMENT_LIMITS = {
  /** Bytes of the document's JSON text. */
  maxDocumentBytes: 1024 * 1024,
  /** Steps in a job, parallel members and finalStep included. */
  maxSteps: 100,
  /** Characters in a step name (failed_step is 255 characters on the server). */
  maxNameChars: 255,
  /** Words in one step's argv (handler path and user included for runHandler). */
  maxArgs: 1024,
  /** Bytes of one step's argv, each word counted with its terminating NUL. */
  maxArgBytes: 128 * 1024,
  /** Problems listed in one rejection; the rest are counted. */
  maxProblems: 100,
} as const;

// setTimeout cannot wait longer than this (about 24.8 days).
const MAX_TIMER_MS = 2_147_483_647;
const MAX_TIMEOUT_SECONDS = Math.floor(MAX_TIMER_MS / 1000);
const MAX_ALLOW_STDERR = 2_147_483_647;
const SUPPORTED_TYPES = 'supported types are runCommand and runHandler';

/** Checks `offer.document` and returns the job ready to run; throws JobValidationError listing every problem. */
export async function validateJob(offer: JobOffer, options: ValidateOptions): Promise<NormalizedJob> {
  const problems = new ProblemList();
  // found while reading the offer (a name too long, a document nested too deep and not kept)
  for (const problem of offer.problems ?? []) problems.add(problem);
  if (!problems.isEmpty()) throw problems.toError();
  const parsed = parseDocument(offer.document, problems);
  if (parsed === null) throw problems.toError();
  const document = convertOldSchema(parsed, problems);
  if (document === null) throw problems.toError();

  checkVersion(document, problems);
  const includeStdOut = readBool(document.includeStdOut, 'includeStdOut', false, '', problems);
  checkConditions(document.conditions, problems);
  const ceiling = options.limitCeiling ?? { memoryMax: null, tasksMax: null, cpuQuota: null };
  // without "limits" the job runs with the ceiling the engine is given
  const limits = document.limits === undefined ? null : applyLimitRequest(ceiling, readLimitRequest(document.limits, ceiling, problems));

  const drafts: DraftNode[] = [];
  let finalDraft: Draft | null = null;
  const steps = document.steps;
  const finalRaw = document.finalStep;
  if (steps === undefined || steps === null) {
    problems.add('steps is missing; it must be a non-empty array of steps');
  } else if (!Array.isArray(steps) || steps.length === 0) {
    problems.add(`steps must be a non-empty array of steps, got ${describe(steps)}`);
  } else {
    const count = countSteps(steps, finalRaw);
    if (count > DOCUMENT_LIMITS.maxSteps) {
      problems.add(
        `the job has ${count} steps (parallel members and finalStep included); at most ${DOCUMENT_LIMITS.maxSteps} are allowed`,
      );
    } else {
      steps.forEach((raw, index) => {
        const node = parseNode(raw, index + 1, problems);
        if (node !== null) drafts.push(node);
      });
      if (finalRaw !== undefined && finalRaw !== null) finalDraft = parseFinalStep(finalRaw, problems);
    }
  }

  const resolver = new StepResolver(options, problems);
  const nodes: StepNode[] = [];
  for (const node of drafts) {
    if (node.kind === 'step') {
      const step = await resolver.resolve(node.draft);
      if (step !== null) nodes.push({ kind: 'step', step });
    } else {
      const members: StepSpec[] = [];
      for (const draft of node.members) {
        const step = await resolver.resolve(draft);
        if (step !== null) members.push(step);
      }
      nodes.push({ kind: 'parallel', name: node.name, members });
    }
  }
  const finalStep = finalDraft === null ? null : await resolver.resolve(finalDraft);

  if (!problems.isEmpty()) throw problems.toError();
  return {
    jobId: offer.jobId,
    jobName: offer.jobName,
    timeoutMs: jobTimeoutMs(offer.timeoutSeconds, options.defaultTimeoutMs),
    includeStdOut,
    steps: nodes,
    finalStep,
    ...(limits === null ? {} : { limits }),
  };
}

/** The whole job's limit: timeout_seconds when positive (capped at what a timer can wait), else the default. */
export function jobTimeoutMs(timeoutSeconds: number | null, defaultTimeoutMs: number): number {
  if (timeoutSeconds === null || !Number.isFinite(timeoutSeconds) || timeoutSeconds <= 0) return defaultTimeoutMs;
  return Math.min(Math.max(1, Math.round(timeoutSeconds * 1000)), MAX_TIMER_MS);
}

// ---------------------------------------------------------------------------
// Document level

type Json = Record<string, unknown>;

class ProblemList {
  private readonly items: string[] = [];
  private readonly seen = new Set<string>();
  add(problem: string): void {
    if (this.seen.has(problem)) return;
    this.seen.add(problem);
    this.items.push(problem);
  }
  size(): number {
    return this.items.length;
  }
  isEmpty(): boolean {
    return this.items.length === 0;
  }
  toError(): JobValidationError {
    const max = DOCUMENT_LIMITS.maxProblems;
    if (this.items.length <= max) return new JobValidationError([...this.items]);
    const rest = this.items.length - max;
    return new JobValidationError([...this.items.slice(0, max), `and ${rest} more problem${rest === 1 ? '' : 's'}`]);
  }
}

// The same sentence as parse-answer's: JSON.stringify and the walks below recurse.
function tooDeep(): string {
  return `job_document nests objects and arrays more than ${MAX_DOCUMENT_DEPTH} levels deep`;
}

function parseDocument(raw: unknown, problems: ProblemList): Json | null {
  let text: string | undefined;
  if (typeof raw === 'string') {
    text = raw;
  } else if (isNestedDeeperThan(raw, MAX_DOCUMENT_DEPTH)) {
    problems.add(tooDeep());
    return null;
  } else {
    try {
      text = JSON.stringify(raw);
    } catch (error) {
      problems.add(`job_document cannot be read as JSON (${error instanceof Error ? error.message : String(error)})`);
      return null;
    }
  }
  if (text === undefined || raw === null) {
    problems.add('job_document is missing; it must be a JSON object with version "1.0" and steps');
    return null;
  }
  const bytes = Buffer.byteLength(text);
  if (bytes > DOCUMENT_LIMITS.maxDocumentBytes) {
    problems.add(`job_document is ${bytes} bytes of JSON; at most ${DOCUMENT_LIMITS.maxDocumentBytes} are allowed`);
    return null;
  }
  let value: unknown = raw;
  if (typeof raw === 'string') {
    try {
      value = JSON.parse(raw) as unknown;
    } catch (error) {
      problems.add(`job_document is a string but not valid JSON (${error instanceof Error ? error.message : String(error)})`);
      return null;
    }
    if (isNestedDeeperThan(value, MAX_DOCUMENT_DEPTH)) {
      problems.add(tooDeep());
      return null;
    }
  }
  if (!isObject(value)) {
    problems.add(`job_document must be a JSON object, got ${describe(value)}`);
    return null;
  }
  return value;
}

// AWS IoT Device Client's older schema: no version, a top-level `operation`
// naming a handler, with `args`, `path` and `allowStdErr` beside it. DC turns
// it into one runHandler step named after the operation (JobDocument.cpp
// LoadFromJobDocument), ignoring everything else; so does this. With a
// version the document is the 1.0 schema and `operation` is an unknown field.
function convertOldSchema(document: Json, problems: ProblemList): Json | null {
  if (!isVersionMissing(document.version) || !Object.hasOwn(document, 'operation')) return document;
  const operation = document.operation;
  if (typeof operation !== 'string' || operation === '') {
    problems.add(
      `operation must be a non-empty string naming a handler (AWS IoT Device Client's old schema), got ${describe(operation)}`,
    );
    return null;
  }
  const input: Json = { handler: operation };
  if (Object.hasOwn(document, 'args')) input.args = document.args;
  if (Object.hasOwn(document, 'path')) input.path = document.path;
  const action: Json = { name: operation, type: 'runHandler', input };
  if (Object.hasOwn(document, 'allowStdErr')) action.allowStdErr = document.allowStdErr;
  const converted: Json = { version: '1.0', steps: [{ action }] };
  if (Object.hasOwn(document, 'includeStdOut')) converted.includeStdOut = document.includeStdOut;
  return converted;
}

function isVersionMissing(version: unknown): boolean {
  return version === undefined || version === null;
}

function checkVersion(document: Json, problems: ProblemList): void {
  const version = document.version;
  if (isVersionMissing(version)) {
    problems.add('version is missing; it must be "1.0"');
  } else if (version !== '1.0') {
    problems.add(`version must be "1.0", got ${describe(version)}`);
  }
}

function checkConditions(conditions: unknown, problems: ProblemList): void {
  if (conditions === undefined || conditions === null) return;
  if (!Array.isArray(conditions)) {
    problems.add(`conditions must be an array, got ${describe(conditions)}`);
    return;
  }
  conditions.forEach((condition: unknown, index) => {
    const at = `conditions[${index}]`;
    if (!isObject(condition)) {
      problems.add(`${at} must be an object with key and value, got ${describe(condition)}`);
      return;
    }
    if (typeof condition.key !== 'string' || condition.key === '') {
      problems.add(`${at}.key must be a non-empty string, got ${describe(condition.key)}`);
    }
    const value = condition.value;
    if (!Array.isArray(value) || value.length === 0 || !value.every((v) => typeof v === 'string')) {
      problems.add(`${at}.value must be a non-empty array of strings, got ${describe(value)}`);
    }
    if (condition.type !== undefined && typeof condition.type !== 'string') {
      problems.add(`${at}.type must be a string, got ${describe(condition.type)}`);
    }
  });
}

/** Counts the steps a document's `steps` and `finalStep` name, as the engine runs them: parallel members one by one, and finalStep. */
export function countSteps(steps: readonly unknown[], finalStep: unknown): number {
  let count = finalStep === undefined || finalStep === null ? 0 : 1;
  for (const step of steps) {
    count += isObject(step) && Array.isArray(step.parallel) ? step.parallel.length : 1;
  }
  return count;
}

// ---------------------------------------------------------------------------
// Step level: structure and types (no I/O)

/** A step whose fields parsed; user and handler are checked afterwards. */
interface Draft {
  label: string;
  name: string;
  /** null when the step's type or input did not parse. */
  action: DraftAction | null;
  /** runAsUser as written, or null when the step names none. */
  runAsUser: string | null;
  allowStdErr: number;
  ignoreStepFailure: boolean;
  timeoutMs: number | null;
  /** Set when a problem was found; user and handler are still checked so every problem is listed. */
  broken: boolean;
}

type DraftAction =
  | { type: 'runCommand'; argv: string[]; shell: boolean }
  | { type: 'runHandler'; handler: string; inputPath: string | null; args: string[] };

type DraftNode = { kind: 'step'; draft: Draft } | { kind: 'parallel'; name: string; members: Draft[] };

function parseNode(raw: unknown, position: number, problems: ProblemList): DraftNode | null {
  if (isObject(raw) && Object.hasOwn(raw, 'parallel')) {
    const name = readName(raw.name, `step ${position}`, problems);
    const label = labelOf(`step ${position}`, raw.name);
    if (Object.hasOwn(raw, 'type') || Object.hasOwn(raw, 'action') || Object.hasOwn(raw, 'input')) {
      problems.add(`${label}: has parallel and also type, action or input; a parallel group only holds steps`);
    }
    const members = raw.parallel;
    if (!Array.isArray(members) || members.length === 0) {
      problems.add(`${label}: parallel must be a non-empty array of steps, got ${describe(members)}`);
      return null;
    }
    const drafts: Draft[] = [];
    members.forEach((member: unknown, index) => {
      const at = `step ${position}.${index + 1}`;
      if (isObject(member) && Object.hasOwn(member, 'parallel')) {
        problems.add(`${labelOf(at, member.name)}: a parallel group cannot contain another parallel group`);
        return;
      }
      const draft = parseStep(member, at, at, problems);
      if (draft !== null) drafts.push(draft);
    });
    return { kind: 'parallel', name, members: drafts };
  }
  const draft = parseStep(raw, `step ${position}`, `step ${position}`, problems);
  return draft === null ? null : { kind: 'step', draft };
}

function parseFinalStep(raw: unknown, problems: ProblemList): Draft | null {
  if (isObject(raw) && Object.hasOwn(raw, 'parallel')) {
    problems.add('finalStep: cannot be a parallel group; it must be one step');
    return null;
  }
  return parseStep(raw, 'finalStep', 'final step', problems);
}

function parseStep(raw: unknown, position: string, defaultName: string, problems: ProblemList): Draft | null {
  if (!isObject(raw)) {
    problems.add(`${position}: must be an object, got ${describe(raw)}`);
    return null;
  }
  let fields: Json = raw;
  if (Object.hasOwn(raw, 'action')) {
    if (!isObject(raw.action)) {
      problems.add(`${labelOf(position, undefined)}: action must be an object, got ${describe(raw.action)}`);
      return null;
    }
    fields = raw.action;
  }
  const label = labelOf(position, fields.name);
  const before = problems.size();
  if (fields !== raw && (Object.hasOwn(raw, 'type') || Object.hasOwn(raw, 'input'))) {
    problems.add(`${label}: has action and also a flattened type or input; use one shape`);
  }
  const name = readName(fields.name, defaultName, problems, label);
  const runAsUser = readRunAsUser(fields.runAsUser, label, problems);
  const allowStdErr = readAllowStdErr(fields.allowStdErr, label, problems);
  const ignoreStepFailure = readBool(fields.ignoreStepFailure, 'ignoreStepFailure', false, `${label}: `, problems);

  const type = fields.type;
  const input = fields.input;
  let action: DraftAction | null = null;
  let timeoutMs: number | null = null;
  if (type === undefined || type === null) {
    problems.add(`${label}: type is missing; ${SUPPORTED_TYPES}`);
  } else if (typeof type !== 'string') {
    problems.add(`${label}: type must be a string, got ${describe(type)}; ${SUPPORTED_TYPES}`);
  } else if (type !== 'runCommand' && type !== 'runHandler') {
    problems.add(`${label}: type ${quote(type)} is not supported; ${SUPPORTED_TYPES}`);
  } else if (input === undefined || input === null) {
    problems.add(`${label}: input is missing; ${type} needs ${type === 'runCommand' ? 'input.command' : 'input.handler'}`);
  } else if (!isObject(input)) {
    problems.add(`${label}: input must be an object, got ${describe(input)}`);
  } else {
    timeoutMs = readStepTimeout(input.timeoutSeconds, label, problems);
    action = type === 'runCommand' ? parseRunCommand(input, label, problems) : parseRunHandler(input, label, problems);
  }
  return {
    label,
    name,
    action,
    runAsUser,
    allowStdErr,
    ignoreStepFailure,
    timeoutMs,
    broken: problems.size() > before,
  };
}

function parseRunCommand(input: Json, label: string, problems: ProblemList): DraftAction | null {
  const shell = readBool(input.shell, 'input.shell', false, `${label}: `, problems);
  const command = input.command;
  const expected = 'a non-empty string or array of strings';
  let argv: string[];
  if (command === undefined || command === null) {
    problems.add(`${label}: input.command is missing; it must be ${expected}`);
    return null;
  } else if (typeof command === 'string') {
    if (command.trim() === '') {
      problems.add(`${label}: input.command must be ${expected}, got ${describe(command)}`);
      return null;
    }
    if (command.includes('\u0000')) {
      problems.add(`${label}: input.command must not contain NUL characters`);
      return null;
    }
    if (shell) {
      argv = ['/bin/sh', '-c', command];
    } else {
      const split = splitCommand(command);
      if (!split.ok) {
        problems.add(`${label}: input.command ${split.problem}`);
        return null;
      }
      argv = split.argv;
    }
  } else if (Array.isArray(command)) {
    if (command.length === 0) {
      problems.add(`${label}: input.command must be ${expected}, got an empty array`);
      return null;
    }
    if (shell) {
      problems.add(`${label}: input.shell needs input.command as one string, got an array`);
      return null;
    }
    if (!checkStringArray(command, 'input.command', label, problems)) return null;
    argv = command as string[];
    if (argv[0] === '') {
      problems.add(`${label}: input.command[0] must not be empty`);
      return null;
    }
  } else {
    problems.add(`${label}: input.command must be ${expected}, got ${describe(command)}`);
    return null;
  }
  if (!checkArgvLimits(argv, 'input.command', label, problems)) return null;
  return { type: 'runCommand', argv, shell };
}

function parseRunHandler(input: Json, label: string, problems: ProblemList): DraftAction | null {
  const handler = input.handler;
  let ok = true;
  if (handler === undefined || handler === null) {
    problems.add(`${label}: input.handler is missing; it must name an executable in jobs.handler_dirs`);
    ok = false;
  } else if (typeof handler !== 'string') {
    problems.add(`${label}: input.handler must be a string, got ${describe(handler)}`);
    ok = false;
  } else {
    const nameProblem = checkHandlerName(handler);
    if (nameProblem !== null) {
      problems.add(`${label}: ${nameProblem}`);
      ok = false;
    }
  }
  let args: string[] = [];
  const rawArgs = input.args;
  if (rawArgs !== undefined && rawArgs !== null) {
    if (!Array.isArray(rawArgs)) {
      problems.add(`${label}: input.args must be an array of strings, got ${describe(rawArgs)}`);
      ok = false;
    } else if (!checkStringArray(rawArgs, 'input.args', label, problems)) {
      ok = false;
    } else {
      args = rawArgs as string[];
    }
  }
  let inputPath: string | null = null;
  const rawPath = input.path;
  if (rawPath !== undefined && rawPath !== null) {
    if (typeof rawPath !== 'string') {
      problems.add(`${label}: input.path must be a string ("default" or one of jobs.handler_dirs), got ${describe(rawPath)}`);
      ok = false;
    } else {
      inputPath = rawPath;
    }
  }
  if (!ok || typeof handler !== 'string') return null;
  // The runner passes [handlerPath, user, ...args]: count those two words too.
  if (!checkArgvLimits([handler, '', ...args], 'input.args', label, problems)) return null;
  return { type: 'runHandler', handler, inputPath, args };
}

function checkStringArray(values: unknown[], field: string, label: string, problems: ProblemList): boolean {
  let ok = true;
  values.forEach((value, index) => {
    if (typeof value !== 'string') {
      problems.add(`${label}: ${field}[${index}] must be a string, got ${describe(value)}`);
      ok = false;
    } else if (value.includes('\u0000')) {
      problems.add(`${label}: ${field}[${index}] must not contain NUL characters`);
      ok = false;
    }
  });
  return ok;
}

function checkArgvLimits(argv: readonly string[], field: string, label: string, problems: ProblemList): boolean {
  if (argv.length > DOCUMENT_LIMITS.maxArgs) {
    problems.add(`${label}: ${field} makes ${argv.length} arguments; at most ${DOCUMENT_LIMITS.maxArgs} are allowed`);
    return false;
  }
  const bytes = argv.reduce((sum, word) => sum + Buffer.byteLength(word) + 1, 0);
  if (bytes > DOCUMENT_LIMITS.maxArgBytes) {
    problems.add(`${label}: ${field} makes ${bytes} bytes of arguments; at most ${DOCUMENT_LIMITS.maxArgBytes} are allowed`);
    return false;
  }
  return true;
}

function readName(raw: unknown, fallback: string, problems: ProblemList, label?: string): string {
  const at = label ?? labelOf(fallback, raw);
  if (raw === undefined || raw === null || raw === '') return fallback;
  if (typeof raw !== 'string') {
    problems.add(`${at}: name must be a string, got ${describe(raw)}`);
    return fallback;
  }
  const chars = [...raw].length;
  if (chars > DOCUMENT_LIMITS.maxNameChars) {
    problems.add(`${at}: name is ${chars} characters long; at most ${DOCUMENT_LIMITS.maxNameChars} are allowed`);
    return fallback;
  }
  // Names head output sections and log lines: one line, printable.
  if (/[\u0000-\u001f\u007f]/.test(raw)) {
    problems.add(`${at}: name must not contain control characters such as newlines`);
    return fallback;
  }
  return raw;
}

function readRunAsUser(raw: unknown, label: string, problems: ProblemList): string | null {
  if (raw === undefined || raw === null || raw === '') return null;
  if (typeof raw !== 'string') {
    problems.add(`${label}: runAsUser must be a string, got ${describe(raw)}`);
    return null;
  }
  return raw;
}

function readAllowStdErr(raw: unknown, label: string, problems: ProblemList): number {
  if (raw === undefined || raw === null) return 0;
  if (typeof raw !== 'number' || !Number.isInteger(raw) || raw < 0 || raw > MAX_ALLOW_STDERR) {
    problems.add(`${label}: allowStdErr must be a non-negative integer (a JSON number), got ${describe(raw)}`);
    return 0;
  }
  return raw;
}

function readStepTimeout(raw: unknown, label: string, problems: ProblemList): number | null {
  if (raw === undefined || raw === null) return null;
  if (typeof raw !== 'number' || !Number.isFinite(raw) || raw <= 0 || raw > MAX_TIMEOUT_SECONDS) {
    problems.add(
      `${label}: input.timeoutSeconds must be a positive number of seconds up to ${MAX_TIMEOUT_SECONDS}, got ${describe(raw)}`,
    );
    return null;
  }
  return Math.max(1, Math.round(raw * 1000));
}

function readBool(raw: unknown, field: string, fallback: boolean, prefix: string, problems: ProblemList): boolean {
  if (raw === undefined || raw === null) return fallback;
  if (raw === true || raw === 'true') return true;
  if (raw === false || raw === 'false') return false;
  problems.add(`${prefix}${field} must be true or false (or the string "true" or "false"), got ${describe(raw)}`);
  return fallback;
}

// ---------------------------------------------------------------------------
// Step level: users and handlers (I/O)

class StepResolver {
  private readonly users = new Map<string, Promise<UserInfo | null | Error>>();
  private readonly allowed: string[];

  constructor(
    private readonly options: ValidateOptions,
    private readonly problems: ProblemList,
  ) {
    // run_as_user is the admin's own choice, so it is always allowed; any
    // other user (root included) only when allowed_users lists it.
    this.allowed = [...new Set([options.runAsUser, ...options.allowedUsers])];
  }

  async resolve(draft: Draft): Promise<StepSpec | null> {
    const explicit = draft.runAsUser !== null;
    const userName = draft.runAsUser ?? this.options.runAsUser;
    let user: UserInfo | null = null;
    if (!this.allowed.includes(userName)) {
      this.problems.add(`${draft.label}: runAsUser ${quote(userName)} is not in jobs.allowed_users (${this.allowed.join(', ')})`);
    } else {
      const found = await this.lookup(userName);
      if (found instanceof Error) {
        const what = explicit ? `${draft.label}: runAsUser ${quote(userName)}` : `jobs.run_as_user ${quote(userName)}`;
        this.problems.add(`${what} could not be looked up (${found.message})`);
      } else if (found === null) {
        this.problems.add(
          explicit
            ? `${draft.label}: runAsUser ${quote(userName)} does not exist on this device`
            : `jobs.run_as_user ${quote(userName)} does not exist on this device; create it (the package does) or set run_as_user`,
        );
      } else {
        user = found;
      }
    }
    if (draft.action === null) return null;
    if (draft.action.type === 'runCommand') {
      if (user === null || draft.broken) return null;
      return this.spec(draft, userName, { type: 'runCommand', argv: draft.action.argv, shell: draft.action.shell });
    }
    const resolved = await resolveHandler(draft.action.handler, {
      handlerDirs: this.options.handlerDirs,
      inputPath: draft.action.inputPath,
      user,
    });
    if (!resolved.ok) {
      for (const problem of resolved.problems) this.problems.add(`${draft.label}: ${problem}`);
      return null;
    }
    if (user === null || draft.broken) return null;
    return this.spec(draft, userName, { type: 'runHandler', handlerPath: resolved.path, args: draft.action.args });
  }

  private spec(draft: Draft, user: string, action: StepSpec['action']): StepSpec {
    return {
      name: draft.name,
      action,
      user,
      allowStdErr: draft.allowStdErr,
      ignoreStepFailure: draft.ignoreStepFailure,
      timeoutMs: draft.timeoutMs,
    };
  }

  private lookup(name: string): Promise<UserInfo | null | Error> {
    let pending = this.users.get(name);
    if (pending === undefined) {
      pending = this.options.lookupUser(name).catch((error: unknown) =>
        error instanceof Error ? error : new Error(String(error)),
      );
      this.users.set(name, pending);
    }
    return pending;
  }
}

// ---------------------------------------------------------------------------
// Wording

// "step 2" or 'step 2 ("Restart")'; long names are cut so a 10 KB name
// cannot flood the report.
function labelOf(position: string, name: unknown): string {
  if (typeof name !== 'string' || name === '') return position;
  return `${position} (${quote(name)})`;
}

function quote(text: string): string {
  const chars = [...text];
  return JSON.stringify(chars.length > 60 ? `${chars.slice(0, 60).join('')}…` : text);
}

function describe(value: unknown): string {
  if (value === undefined) return 'nothing';
  if (value === null) return 'null';
  if (typeof value === 'string') return value === '' ? 'an empty string' : `string ${quote(value)}`;
  if (typeof value === 'number' || typeof value === 'boolean') return `${typeof value} ${String(value)}`;
  if (Array.isArray(value)) return value.length === 0 ? 'an empty array' : `an array of ${value.length}`;
  if (typeof value === 'object') return 'an object';
  return typeof value;
}

function isObject(value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
