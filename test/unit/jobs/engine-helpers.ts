// Builders shared by the engine tests: steps, jobs and engine options over real
// fixture scripts in test/fixtures/scripts.
import { chmod, mkdtemp } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { createSystemClock } from '../../../src/clock/clock.js';
import { createNullLog } from '../../../src/log/log.js';
import type { EngineOptions } from '../../../src/jobs/engine.js';
import type { NormalizedJob, StepNode, StepSpec } from '../../../src/jobs/types.js';
import { lookupUser } from '../../../src/jobs/users.js';

export const SCRIPTS = path.resolve(__dirname, '../../fixtures/scripts');
export const STEP_PATH = '/usr/local/bin:/usr/bin:/bin';
export const AGENT_USER = os.userInfo().username;

/** A runCommand step running as the agent's own user. */
export function commandStep(name: string, argv: string[], extra: Partial<StepSpec> = {}): StepSpec {
  return {
    name,
    action: { type: 'runCommand', argv, shell: false },
    user: AGENT_USER,
    allowStdErr: 0,
    ignoreStepFailure: false,
    timeoutMs: null,
    ...extra,
  };
}

/** A step running fixture script `script` with `args`. */
export function scriptStep(name: string, script: string, args: string[] = [], extra: Partial<StepSpec> = {}): StepSpec {
  return commandStep(name, [path.join(SCRIPTS, script), ...args], extra);
}

/** A job of the given steps (plain specs become single steps). */
export function makeJob(steps: (StepSpec | StepNode)[], extra: Partial<NormalizedJob> = {}): NormalizedJob {
  return {
    jobId: 'job-1',
    jobName: 'test job',
    timeoutMs: 60_000,
    includeStdOut: true,
    steps: steps.map((s) => ('kind' in s ? s : { kind: 'step', step: s })),
    finalStep: null,
    ...extra,
  };
}

/** A fresh work_dir (0755, ours) and engine options with small limits. */
export async function makeOptions(extra: Partial<EngineOptions> = {}): Promise<EngineOptions> {
  const workDir = extra.workDir ?? (await mkdtemp(path.join(os.tmpdir(), 'cloudjobs-work-')));
  if (extra.workDir === undefined) await chmod(workDir, 0o755);
  return {
    workDir,
    killGraceMs: 200,
    maxOutput: 4096,
    maxParallel: 4,
    path: STEP_PATH,
    agentVersion: '9.9.9-test',
    clock: createSystemClock(),
    log: createNullLog(),
    lookupUser,
    ...extra,
  };
}
