// Issue 20, item 5: without systemd (this host runs none) the agent runs jobs
// as before and says ONCE that the configured limits are not enforced; with
// every limit set to 0 there is nothing to enforce and nothing is said.
import { existsSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import type { ReferenceCloud } from '../cloud/reference-cloud.js';
import { commandJob, type AgentProcess, type TestDevice } from './harness.js';
import { createScope, expectCleanStop, logLines, unexpectedWarnings } from './polling-helpers.js';

const scope = createScope();
const NOT_ENFORCED = /resource limits are not enforced: systemd is not running/;

afterEach(async () => {
  await scope.cleanup();
});

async function runTwoJobs(jobs: Record<string, string>): Promise<string> {
  const { cloud, device }: { cloud: ReferenceCloud; device: TestDevice } = await scope.cloud({ generation: 'devices' });
  const agent: AgentProcess = scope.agent(await scope.dirs(cloud, device, { jobs }));
  for (const name of ['first', 'second']) {
    const job = cloud.queueJob(device.uuid, { name, document: commandJob(['echo', name]) });
    await cloud.waitForJobStatus(job.job_id, 'SUCCEEDED', 30_000);
  }
  return expectCleanStop(agent);
}

describe.runIf(!existsSync('/run/systemd/system'))('resource limits on a host without systemd', () => {
  it('the shipped defaults: jobs run, and one warning names the limits that are not enforced', async () => {
    const output = await runTwoJobs({ memory_max: '256MiB', tasks_max: '512', cpu_quota: '80%' });
    expect(logLines(output, 'WARN', NOT_ENFORCED)).toEqual([
      expect.stringContaining('jobs run as before, without memory 256 MiB, 512 tasks, CPU 80%'),
    ]);
  });

  it('every limit 0: jobs run and nothing is said', async () => {
    const output = await runTwoJobs({ memory_max: '0B', tasks_max: '0', cpu_quota: '0%' });
    expect(unexpectedWarnings(output)).toEqual([]);
  });
});
