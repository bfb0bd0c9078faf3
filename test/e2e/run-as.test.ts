// How a step becomes its user, seen from inside the step, with the built
// executable as root (src/jobs/launch.ts): under no_new_privs (what the unit's
// NoNewPrivileges=yes gives the agent) the spawn switches uid and gid itself;
// without it, setpriv does. Either way the step holds no capability and has
// no_new_privs.
import { afterAll, describe, expect, it } from 'vitest';
import { commandJob, createAgentDirs, removeDirs, startAgent, startCloudWithDevice, stopAgent } from './harness.js';

const isRoot = process.getuid?.() === 0;
const STATUS_FIELDS = ['grep', '-E', '^(Uid|Gid|Groups|CapInh|CapPrm|CapEff|CapAmb|NoNewPrivs):', '/proc/self/status'];
const EMPTY = '0000000000000000';

describe.runIf(isRoot)('run-as through the built agent (root only)', () => {
  const cleanups: (() => Promise<void>)[] = [];
  afterAll(async () => {
    for (const cleanup of cleanups.reverse()) await cleanup();
  });

  async function stepStatus(prefix: string[]): Promise<Record<string, string>> {
    const { cloud, device } = await startCloudWithDevice();
    const dirs = await createAgentDirs(cloud, device, {});
    const agent = startAgent(dirs, { prefix });
    cleanups.push(async () => {
      await stopAgent(agent, 10_000);
      await cloud.close();
      await removeDirs(dirs);
    });
    const job = cloud.queueJob(device.uuid, { name: 'who', document: commandJob(STATUS_FIELDS) });
    await cloud.waitForJobStatus(job.job_id, 'SUCCEEDED', 30_000);
    const stdout = String(cloud.getJob(job.job_id)?.stdout ?? '');
    return Object.fromEntries(
      stdout
        .split('\n')
        .filter((line) => line.includes(':\t'))
        .map((line) => [line.slice(0, line.indexOf(':')), line.slice(line.indexOf(':') + 1).trim()]),
    );
  }

  it('under no_new_privs the spawn switches ids: nobody, no groups, no capabilities, no_new_privs inherited', async () => {
    const status = await stepStatus(['setpriv', '--no-new-privs', '--']);
    expect(status).toEqual({
      Uid: '65534\t65534\t65534\t65534',
      Gid: '65534\t65534\t65534\t65534',
      Groups: '',
      CapInh: EMPTY,
      CapPrm: EMPTY,
      CapEff: EMPTY,
      CapAmb: EMPTY,
      NoNewPrivs: '1',
    });
  });

  it('without no_new_privs setpriv switches: the initgroups list, no capabilities, no_new_privs set for the step', async () => {
    const status = await stepStatus([]);
    expect(status).toEqual({
      Uid: '65534\t65534\t65534\t65534',
      Gid: '65534\t65534\t65534\t65534',
      Groups: '65534',
      CapInh: EMPTY,
      CapPrm: EMPTY,
      CapEff: EMPTY,
      CapAmb: EMPTY,
      NoNewPrivs: '1',
    });
  });
});
