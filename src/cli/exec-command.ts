// `cloudjobs exec JOB.json`: runs a job document locally through the same
// validation and engine as the agent, without the cloud, and prints the result.
import { readFile, stat } from 'node:fs/promises';
import os from 'node:os';
import { createEngine } from '../agent/engine-adapter.js';
import { createSystemClock } from '../clock/clock.js';
import type { Config } from '../config/schema.js';
import type { JobOffer, StatusReport } from '../contract/types.js';
import { formatExecResult } from '../jobs/format-result.js';
import { lookupUser } from '../jobs/users.js';
import type { Command } from './args.js';
import { EXIT, type CliContext } from './context.js';
import { createCliLog, loadCliConfig } from './setup.js';
import { createVerifierFromConfig, loadConfiguredKeys, readDeviceUuid } from './signing-setup.js';

type ExecCommand = Extract<Command, { name: 'exec' }>;

// Larger files are not read whole: validation rejects documents over 1 MiB anyway.
const MAX_FILE_BYTES = 2 * 1024 * 1024;

/** Runs a job file; exit 0 only when the job SUCCEEDED. */
export async function runExec(ctx: CliContext, command: ExecCommand): Promise<number> {
  const loaded = loadCliConfig(ctx, command, { requireApiUrl: false });
  const { log } = createCliLog(ctx, { level: loaded.config.logging.level });
  for (const warning of loaded.warnings) log.warn(warning);
  const jobs = jobsForExec(loaded.config.jobs, ctx.isRoot);
  // the same signature rules as the agent: a bad trusted key is a config error (78)
  const trustedKeys = await loadConfiguredKeys(loaded.config);

  const text = await readJobFile(ctx, command.file);
  if (text === null) return EXIT.failure;
  const offer = readOffer(text, command.file);
  const clock = createSystemClock();
  const deviceUuid = await readDeviceUuid(loaded.config);
  const verifier = createVerifierFromConfig(loaded.config, trustedKeys, { deviceUuid, log, clock });
  const engine = createEngine({
    verifier,
    jobs,
    agentVersion: ctx.version,
    clock,
    log,
    lookupUser,
    agentUid: ctx.uid,
  });

  let report: StatusReport;
  try {
    const job = await engine.validate(offer);
    // the engine logs each step's start and end
    const run = engine.start(job, { onStepStart: () => undefined, onStepEnd: () => undefined });
    ctx.onStopSignal(() => run.stop('cancel'));
    report = await run.done;
    const request = run.rebootRequest;
    if (request !== null) {
      const left = `${request.stepsDone} step${request.stepsDone === 1 ? '' : 's'} ran`;
      report = { ...report, reason: `${request.label} asked for a reboot; cloudjobs exec does not reboot, so the job stops here (${left})` };
    }
  } catch (error) {
    const problems = (error as { problems?: readonly string[] }).problems;
    if (!problems) throw error;
    report = engine.rejectedReport(problems);
  }
  ctx.stdout.write(formatExecResult(report));
  return report.status === 'SUCCEEDED' ? EXIT.ok : EXIT.failure;
}

/** Reads a job file of at most 2 MiB; null (after saying why on stderr) when it cannot be read. */
export async function readJobFile(ctx: CliContext, file: string): Promise<string | null> {
  try {
    const info = await stat(file);
    if (!info.isFile()) throw new Error('not a regular file');
    if (info.size > MAX_FILE_BYTES) {
      ctx.stderr.write(`cloudjobs: ${file} is ${info.size} bytes; a job document may be at most 1 MiB\n`);
      return null;
    }
    return await readFile(file, 'utf8');
  } catch (error) {
    ctx.stderr.write(`cloudjobs: cannot read the job file ${file}: ${(error as Error).message}\n`);
    return null;
  }
}

// As root exec runs steps like the agent; as anyone else it can only run them as that user.
function jobsForExec(jobs: Config['jobs'], isRoot: boolean): Config['jobs'] {
  if (isRoot) return jobs;
  const me = os.userInfo().username;
  return { ...jobs, run_as_user: me, allowed_users: [me] };
}

/** Accepts a bare job document or a whole offer as `GET .../jobs/next` answers it. */
export function readOffer(text: string, file: string): JobOffer {
  let value: unknown = text;
  try {
    value = JSON.parse(text) as unknown;
  } catch {
    // not JSON: validation reports it as a document that does not parse
  }
  if (value && typeof value === 'object' && !Array.isArray(value) && 'job_document' in value) {
    const offer = value as Record<string, unknown>;
    return {
      jobId: typeof offer.job_id === 'string' && offer.job_id ? offer.job_id : `local-${process.pid}`,
      jobName: typeof offer.job_name === 'string' && offer.job_name ? offer.job_name : file,
      timeoutSeconds: typeof offer.timeout_seconds === 'number' ? offer.timeout_seconds : null,
      createdAt: null,
      document: offer.job_document,
    };
  }
  return { jobId: `local-${Date.now()}`, jobName: file, timeoutSeconds: null, createdAt: null, document: value };
}
