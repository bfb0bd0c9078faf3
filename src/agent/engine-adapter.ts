// Binds the job engine to the configuration: validation with the run-as and
// handler rules, runs with the [jobs] limits, and the reports the agent makes
// without running anything (rejected, interrupted by a crash).
import type { Clock } from '../clock/clock.js';
import type { Config } from '../config/schema.js';
import type { JobOffer, StatusReport } from '../contract/types.js';
import { fitReport, REPORT_BUDGET_BYTES, serializedBytes } from '../contract/fit-report.js';
import { countSteps } from '../jobs/document.js';
import { composeReport, createRejectedReport } from '../jobs/report.js';
import { ceilingFromConfig } from '../jobs/limits.js';
import type { LimitSupport } from '../jobs/job-unit.js';
import type { UserInfo } from '../jobs/users.js';
import { describeError } from '../errors/errors.js';
import type { Log } from '../log/log.js';
import { createYoungCollector } from '../service/memory.js';
import type { JobVerifier } from '../security/job-verifier.js';
import { hasRebooted, type BootIdentity } from '../state/boot-identity.js';
import type { JournalEntry } from '../state/journal.js';
import type { EnginePort, JobRunPort } from './ports.js';

// How long a looked-up account is reused.
const USER_CACHE_MS = 60_000;

/** What createEngine needs besides the configuration. */
export interface EngineDeps {
  jobs: Config['jobs'];
  agentVersion: string;
  clock: Clock;
  log: Log;
  lookupUser: (name: string) => Promise<UserInfo | null>;
  /** The uid the agent runs as (only root can run steps as other users). */
  agentUid: number;
  /** Signed job documents (security/job-verifier.ts): checked before anything of a job runs; absent only in tests of other things. */
  verifier?: JobVerifier;
  /**
   * The agent (`cloudjobs run`), not `cloudjobs exec`: it owns every job slice,
   * so it sweeps those an earlier agent process left before its first job.
   */
  ownsJobUnits?: boolean;
}

/** Creates the engine the agent and `cloudjobs exec` use. */
export function createEngine(deps: EngineDeps): EnginePort {
  const { jobs, agentVersion, clock, log, agentUid } = deps;
  // Each NSS lookup is two getent processes: validation and every step share one
  // per user, kept for USER_CACHE_MS across jobs (a queue of jobs does not pay it
  // each time; an account change applies within that time, as with nscd).
  const users = new Map<string, { at: number; found: Promise<UserInfo | null> }>();
  const lookupUser = (name: string): Promise<UserInfo | null> => {
    const cached = users.get(name);
    if (cached && clock.monotonic() - cached.at < USER_CACHE_MS) return cached.found;
    const found = deps.lookupUser(name);
    users.set(name, { at: clock.monotonic(), found });
    found.catch(() => users.delete(name));
    return found;
  };
  // The engine and validation (with execa) load with the first job: an idle
  // agent on a 512 MB Pi does not carry them.
  let engine: typeof import('../jobs/engine.js') | null = null;
  let reclaimMemory: (() => void) | null | undefined;
  const limitCeiling = ceilingFromConfig(jobs);
  let limits: Promise<LimitSupport> | null = null;
  const prepareLimits = (): Promise<LimitSupport> => {
    limits ??= import('../jobs/limit-setup.js').then((m) => m.prepareJobLimits({ ceiling: limitCeiling, agentUid, clock, log, killGraceMs: jobs.kill_grace, sweep: deps.ownsJobUnits === true }));
    return limits;
  };
  let limitSupport: LimitSupport | undefined;
  return {
    validate: async (offer: JobOffer, options?: { resumed?: boolean }) => {
      // the signature first: an offer refused for it looks up no user and resolves no handler
      if (deps.verifier && !(offer.problems && offer.problems.length > 0)) await deps.verifier.verify(offer, options);
      const [{ validateJob }, loaded, support] = await Promise.all([import('../jobs/document.js'), import('../jobs/engine.js'), prepareLimits()]);
      engine = loaded;
      limitSupport = support;
      return validateJob(offer, {
        limitCeiling,
        runAsUser: jobs.run_as_user,
        allowedUsers: jobs.allowed_users,
        handlerDirs: jobs.handler_dirs,
        defaultTimeoutMs: jobs.default_timeout,
        lookupUser,
      });
    },
    start: (job, hooks, start) => {
      if (!engine) throw new Error('internal: start() before validate()');
      if (reclaimMemory === undefined) reclaimMemory = createYoungCollector();
      const run = engine.startJob(
        job,
        {
          workDir: jobs.work_dir,
          killGraceMs: jobs.kill_grace,
          maxOutput: jobs.max_output,
          maxParallel: jobs.max_parallel,
          path: jobs.path,
          agentVersion,
          clock,
          log,
          lookupUser,
          agentUid,
          reclaimMemory: reclaimMemory ?? undefined,
          limitCeiling,
          limitSupport,
        },
        hooks,
        start,
      );
      return boundRun(run, (report, final) => boundReport(report, final, log, job.jobId));
    },
    removeLeftovers: async (jobId) => {
      const fields = { jobId };
      // the interrupted job's processes (its slice) go before its directories
      await prepareLimits();
      try {
        const [{ removeLeftoverJobDirs }, { readAgentPrivileges }] = await Promise.all([
          import('../jobs/work-dir.js'),
          import('../jobs/launch.js'),
        ]);
        const agent = await readAgentPrivileges(agentUid);
        const { removed, problems } = await removeLeftoverJobDirs(jobs.work_dir, jobId, { agent, clock, killGraceMs: jobs.kill_grace });
        if (removed.length > 0) log.info(`removed ${removed.length} work dir(s) the interrupted job left behind`, fields);
        for (const problem of problems) log.warn(`could not remove a work dir the interrupted job left behind: ${problem}`, fields);
      } catch (error) {
        log.warn(`could not remove the work dirs the interrupted job left behind: ${describeError(error)}`, fields);
      }
    },
    rejectedReport: (problems) => boundReport(createRejectedReport(problems, agentVersion), true, log, null),
    unstartedReport: (reason) =>
      composeReport({ status: 'FAILED', reason, results: [], includeStdOut: false, agentVersion, durationMs: 0, decisive: null }),
    interruptedReport: (entry, currentBoot) => boundReport(createInterruptedReport(entry, agentVersion, currentBoot), true, log, entry.offer.jobId),
    timeoutOf: async (offer) => (await import('../jobs/document.js')).jobTimeoutMs(offer.timeoutSeconds, jobs.default_timeout),
    journaledReport: (entry, status, reason) =>
      boundReport(createJournaledReport(entry, status, reason, agentVersion), true, log, entry.offer.jobId),
  };
}

// Every report the engine makes leaves it within REPORT_BUDGET_BYTES: the
// journal, the outbox and history only ever hold reports the server can take.
function boundRun(run: JobRunPort, bound: (report: StatusReport, final: boolean) => StatusReport): JobRunPort {
  return {
    done: run.done.then((report) => bound(report, true)),
    snapshot: () => bound(run.snapshot(), false),
    stop: (kind) => run.stop(kind),
    halt: (reason) => run.halt(reason),
    get rebootRequest() {
      return run.rebootRequest;
    },
  };
}

function boundReport(report: StatusReport, final: boolean, log: Log, jobId: string | null): StatusReport {
  const fitted = fitReport(report, REPORT_BUDGET_BYTES);
  if (fitted.truncated) {
    const original = serializedBytes(report);
    log[final ? 'info' : 'debug'](
      `the ${report.status} report is ${original} bytes as JSON, over the ${REPORT_BUDGET_BYTES}-byte report budget; its output was cut to ${fitted.bytes} bytes (status_details.truncated says what)`,
      { ...(jobId === null ? {} : { jobId }), jobStatus: report.status },
    );
  }
  return fitted.report;
}

/**
 * A final report made from the journal alone, for a job that asked for a
 * reboot and ends without running on (reboot refused or did not happen, time
 * limit gone): every step so far, the step that asked as the decisive one.
 */
function createJournaledReport(
  entry: JournalEntry,
  status: 'FAILED' | 'TIMED_OUT',
  reason: string,
  agentVersion: string,
): StatusReport {
  const results = entry.steps.map((s) => s.result);
  const last = results[results.length - 1] ?? null;
  const receivedAt = Date.parse(entry.receivedAt);
  const lastEnd = results.reduce((max, r) => Math.max(max, Date.parse(r.startedAt) + r.durationMs), receivedAt);
  return composeReport({
    status,
    reason,
    results,
    includeStdOut: readIncludeStdOut(entry.offer.document),
    agentVersion,
    durationMs: Number.isFinite(lastEnd - receivedAt) ? lastEnd - receivedAt : 0,
    decisive: status === 'FAILED' ? last : null,
    extraDetails: { reboots: entry.reboots },
  });
}

/**
 * The FAILED report of a job that was running when the agent stopped (crash,
 * kill -9, power loss), found by the agent running in `currentBoot` (null: not
 * known). Step records are not synced one by one (journal.ts): in another boot
 * than the entry's, or when either boot is unknown, the journal's account is
 * only a lower bound, and the reason says so instead of "before the first step".
 */
export function createInterruptedReport(entry: JournalEntry, agentVersion: string, currentBoot: BootIdentity | null): StatusReport {
  const results = entry.steps.map((s) => s.result);
  const running = entry.running[0];
  const total = running?.total ?? countDocumentSteps(entry.offer.document);
  let where: string;
  if (running) {
    const others = entry.running.length > 1 ? ` and ${entry.running.length - 1} more step(s) beside it` : '';
    where = `while step ${running.index + 1} of ${running.total} (${running.name})${others} was running`;
  } else if (results.length > 0) {
    where = total
      ? `after ${results.length} of ${total} steps had finished`
      : `after ${results.length} step${results.length === 1 ? '' : 's'} had finished`;
  } else {
    where = 'before the first step started';
  }
  const entryBoot = entry.boot;
  const known = entryBoot !== null && currentBoot !== null;
  const mayLag = !known || hasRebooted(entryBoot, currentBoot);
  if (mayLag) {
    const why = known ? 'the device restarted since (power loss or reboot)' : 'it cannot tell whether the device restarted since';
    where += ` as far as its journal shows; ${why}, and steps are not synced to disk one by one, so later steps may have started`;
  }
  const receivedAt = Date.parse(entry.receivedAt);
  const lastEnd = results.reduce((max, r) => Math.max(max, Date.parse(r.startedAt) + r.durationMs), receivedAt);
  return composeReport({
    status: 'FAILED',
    reason: `interrupted: the agent stopped ${where}; the job was not resumed`,
    results,
    includeStdOut: readIncludeStdOut(entry.offer.document),
    agentVersion,
    durationMs: Number.isFinite(lastEnd - receivedAt) ? lastEnd - receivedAt : 0,
    decisive: null,
    extraDetails: { interrupted: true, running_steps: entry.running.map((r) => ({ index: r.index + 1, name: r.name })), journal_may_lag: mayLag },
  });
}

// Steps as the engine counts them (parallel members and finalStep included), or null when unreadable.
function countDocumentSteps(document: unknown): number | null {
  const doc = parseDocument(document);
  if (!doc || !Array.isArray(doc.steps)) return null;
  return countSteps(doc.steps as unknown[], doc.finalStep);
}

function parseDocument(document: unknown): Record<string, unknown> | null {
  let doc = document;
  if (typeof doc === 'string') {
    try {
      doc = JSON.parse(doc) as unknown;
    } catch {
      return null;
    }
  }
  return doc && typeof doc === 'object' && !Array.isArray(doc) ? (doc as Record<string, unknown>) : null;
}

// Same default as validation (AWS): stdout is reported only when the document asks for it.
function readIncludeStdOut(document: unknown): boolean {
  const value = parseDocument(document)?.includeStdOut;
  return value === true || value === 'true';
}
