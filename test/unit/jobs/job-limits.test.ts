// JobRun with limits, over stand-ins for busctl and systemd-run that make a
// fake cgroup tree: the engine's side (counters read after each step and
// while it runs, the job stopped, the reason, the report) without systemd.
// The real mechanism runs in test/vm/limits.sh.
import { chmod, mkdtemp, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { startJob } from '../../../src/jobs/engine.js';
import type { LimitSupport } from '../../../src/jobs/job-unit.js';
import { applyLimitRequest, type JobLimits } from '../../../src/jobs/limits.js';
import { commandStep, makeJob, makeOptions } from './engine-helpers.js';

const MiB = 1024 * 1024;
const CEILING: JobLimits = { memoryMax: 256 * MiB, tasksMax: 64, cpuQuota: 50 };

// busctl: makes the slice's directory (one level per dash) with a memory.peak.
// systemd-run: runs what follows "--", after playing the kernel when a marker file says so.
async function fakeSystemd(busctlExit = 0): Promise<{ root: string; support: LimitSupport }> {
  const root = await mkdtemp(path.join(os.tmpdir(), 'fake-systemd-'));
  const busctl = `#!/bin/sh
[ ${busctlExit} = 0 ] || { echo "Call failed: Unit cloudjobs-jobs.slice has a bad unit file setting." >&2; exit ${busctlExit}; }
stem=\${8%.slice}; p=""; acc=""
IFS=-; for part in $stem; do acc="\${acc:+$acc-}$part"; p="$p/$acc.slice"; done
mkdir -p "${root}$p" && echo "$p" > "${root}/last-slice" && echo 123456789 > "${root}$p/memory.peak"
`;
  const systemdRun = `#!/bin/sh
while [ "$1" != "--" ]; do shift; done; shift
dir="${root}$(cat "${root}/last-slice")"
if [ -f "${root}/oom" ]; then printf 'oom_kill 1\\n' > "$dir/memory.events"; kill -KILL $$; fi
if [ -f "${root}/forkbomb" ]; then printf 'max 5\\n' > "$dir/pids.events"; fi
exec "$@"
`;
  const systemctl = '#!/bin/sh\nexit 0\n';
  for (const [name, text] of Object.entries({ busctl, systemdRun, systemctl })) {
    await writeFile(path.join(root, name), text);
    await chmod(path.join(root, name), 0o755);
  }
  await writeFile(path.join(root, 'cgroup.controllers'), 'memory pids cpu\n');
  const support: LimitSupport = {
    enforced: true,
    tools: { busctl: path.join(root, 'busctl'), systemdRun: path.join(root, 'systemdRun'), systemctl: path.join(root, 'systemctl'), choom: '/usr/bin/choom' },
    layout: { unified: root, legacy: null, controllers: new Set(['memory', 'pids', 'cpu']) },
    agentUnit: null,
    gaps: [],
  };
  return { root, support };
}

describe('JobRun with resource limits (stand-in systemd)', () => {
  it('a step the OOM killer ends is FAILED with the limit named, from the counters, and nothing after it runs', async () => {
    const { root, support } = await fakeSystemd();
    await writeFile(path.join(root, 'oom'), '');
    const options = await makeOptions({ limitSupport: support, limitCeiling: CEILING, limitPollMs: 50 });
    const job = makeJob([commandStep('Alloc', ['true']), commandStep('After', ['true'])], {
      limits: applyLimitRequest(CEILING, { memoryMax: null, tasksMax: null, cpuQuota: null }),
    });
    const report = await startJob(job, options).done;
    expect(report.status).toBe('FAILED');
    expect(report.reason).toBe(`step 1 ("Alloc") failed: out of memory: the job's memory limit is 256 MiB (jobs.memory_max)`);
    expect(report.executed_steps).toBe(1);
    expect(report.status_details.limits).toMatchObject({
      enforced: true,
      memory_max: 256 * MiB,
      tasks_max: 64,
      cpu_quota_percent: 50,
      from_document: [],
      memory_peak: 123_456_789,
      unit: expect.stringMatching(/^cloudjobs-jobs-[0-9a-f]{18}\.slice$/),
    });
    expect((report.status_details.steps as Array<Record<string, unknown>>)[0]).toMatchObject({ signal: 'SIGKILL' });
  });

  it('a job that hits tasks_max is stopped while it runs and says so, naming the document\'s own limit', async () => {
    const { root, support } = await fakeSystemd();
    await writeFile(path.join(root, 'forkbomb'), '');
    const options = await makeOptions({ limitSupport: support, limitCeiling: CEILING, limitPollMs: 50 });
    const job = makeJob([commandStep('Bomb', ['sleep', '30'])], {
      limits: applyLimitRequest(CEILING, { memoryMax: null, tasksMax: 16, cpuQuota: null }),
    });
    const report = await startJob(job, options).done;
    expect(report.status).toBe('FAILED');
    expect(report.reason).toBe(
      `step 1 ("Bomb") failed: stopped at the task limit: the job may have 16 processes and threads at once (the job's limits.tasksMax)`,
    );
    expect(report.status_details.limits).toMatchObject({ tasks_max: 16, from_document: ['tasksMax'] });
  });

  it('a job within its limits succeeds and its report shows them', async () => {
    const { support } = await fakeSystemd();
    const options = await makeOptions({ limitSupport: support, limitCeiling: CEILING, limitPollMs: 50 });
    const report = await startJob(makeJob([commandStep('Fine', ['echo', 'ok'])]), options).done;
    expect(report.status).toBe('SUCCEEDED');
    expect(report.stdout).toContain('ok');
    expect(report.status_details.limits).toMatchObject({ enforced: true, memory_max: 256 * MiB, memory_peak: 123_456_789 });
  });

  it('no step runs without its limits: a slice systemd refuses fails the job with systemd\'s words', async () => {
    const { support } = await fakeSystemd(1);
    const options = await makeOptions({ limitSupport: support, limitCeiling: CEILING });
    const report = await startJob(makeJob([commandStep('Never', ['true'])]), options).done;
    expect(report.status).toBe('FAILED');
    expect(report.executed_steps).toBe(0);
    expect(report.reason).toMatch(
      /^no step ran: could not apply the job's resource limits: could not create the job's slice cloudjobs-jobs-[0-9a-f]{18}\.slice: Call failed: Unit cloudjobs-jobs\.slice has a bad unit file setting\.$/,
    );
  });

  it('without support the job runs as before and the report says why limits were not enforced', async () => {
    const options = await makeOptions({ limitSupport: { enforced: false, why: 'systemd is not running' }, limitCeiling: CEILING });
    const report = await startJob(makeJob([commandStep('Plain', ['true'])]), options).done;
    expect(report.status).toBe('SUCCEEDED');
    expect(report.status_details.limits).toEqual({
      enforced: false,
      why: 'systemd is not running',
      memory_max: 256 * MiB,
      tasks_max: 64,
      cpu_quota_percent: 50,
      from_document: [],
    });
  });
});
