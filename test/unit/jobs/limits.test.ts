import { describe, expect, it } from 'vitest';
import {
  applyLimitRequest,
  ceilingFromConfig,
  describeLimits,
  describeOutOfMemory,
  describeTasksMax,
  formatBytes,
  quotaPerSecUsec,
  readLimitRequest,
  type JobLimits,
} from '../../../src/jobs/limits.js';

const MiB = 1024 * 1024;
const CEILING: JobLimits = { memoryMax: 256 * MiB, tasksMax: 512, cpuQuota: 80 };

function read(raw: unknown, ceiling: JobLimits = CEILING): { request: JobLimits; problems: string[] } {
  const problems: string[] = [];
  const request = readLimitRequest(raw, ceiling, { add: (p) => problems.push(p) });
  return { request, problems };
}

describe('ceilingFromConfig', () => {
  it('takes [jobs] values, 0 meaning no limit, and the quota fraction as percent', () => {
    expect(ceilingFromConfig({ memory_max: 256 * MiB, tasks_max: 512, cpu_quota: 0.8 })).toEqual(CEILING);
    expect(ceilingFromConfig({ memory_max: 0, tasks_max: 0, cpu_quota: 0 })).toEqual({ memoryMax: null, tasksMax: null, cpuQuota: null });
    expect(ceilingFromConfig({ memory_max: 1, tasks_max: 1, cpu_quota: 2.005 }).cpuQuota).toBe(200.5);
  });
});

describe('readLimitRequest: a job document may lower its limits', () => {
  it('reads sizes, counts and percentages in their written forms', () => {
    expect(read({ memoryMax: '128MiB', tasksMax: 64, cpuQuota: '50%' })).toEqual({
      request: { memoryMax: 128 * MiB, tasksMax: 64, cpuQuota: 50 },
      problems: [],
    });
    expect(read({ memoryMax: 64 * MiB, cpuQuota: 20 }).request).toEqual({ memoryMax: 64 * MiB, tasksMax: null, cpuQuota: 20 });
    expect(read(undefined)).toEqual({ request: { memoryMax: null, tasksMax: null, cpuQuota: null }, problems: [] });
  });

  it('asks for the ceiling itself: allowed', () => {
    expect(read({ memoryMax: '256MiB', tasksMax: 512, cpuQuota: '80%' }).problems).toEqual([]);
  });

  it('rejects each limit above the ceiling, naming both values and the key', () => {
    expect(read({ memoryMax: '1GiB', tasksMax: 513, cpuQuota: '100%' })).toEqual({
      request: { memoryMax: null, tasksMax: null, cpuQuota: null },
      problems: [
        "limits.memoryMax 1 GiB is above this device's jobs.memory_max of 256 MiB; a job may only lower its limits",
        "limits.tasksMax 513 is above this device's jobs.tasks_max of 512; a job may only lower its limits",
        "limits.cpuQuota 100% is above this device's jobs.cpu_quota of 80%; a job may only lower its limits",
      ],
    });
  });

  it('lets any value through where the device has no limit of that kind', () => {
    const none: JobLimits = { memoryMax: null, tasksMax: null, cpuQuota: null };
    expect(read({ memoryMax: '8GiB', tasksMax: 100_000, cpuQuota: '400%' }, none).problems).toEqual([]);
  });

  it('rejects what is not a limit, with the form expected', () => {
    expect(read([1]).problems).toEqual(['limits must be an object such as {"memoryMax": "128MiB", "tasksMax": 64, "cpuQuota": "50%"}']);
    expect(read({ memory: '1MiB', memoryMax: '1MiB', tasksMax: 0, cpuQuota: '-5%' }).problems).toEqual([
      'limits.memory is not a limit; known limits are memoryMax, tasksMax and cpuQuota',
      'limits.memoryMax must be a size such as "128MiB" (at least 4 MiB) or a number of bytes, got "1MiB"',
      'limits.tasksMax must be a whole number from 1 to 4194304, got 0',
      'limits.cpuQuota must be a percentage of one CPU such as "50%" (at least 1%), got "-5%"',
    ]);
    expect(read({ tasksMax: 1.5, memoryMax: 'x'.repeat(100) }).problems).toEqual([
      `limits.memoryMax must be a size such as "128MiB" (at least 4 MiB) or a number of bytes, got "${'x'.repeat(40)}…"`,
      'limits.tasksMax must be a whole number from 1 to 4194304, got 1.5',
    ]);
  });
});

describe('applyLimitRequest', () => {
  it('takes what the document asks for and keeps the ceiling for the rest, remembering which is which', () => {
    expect(applyLimitRequest(CEILING, { memoryMax: 64 * MiB, tasksMax: null, cpuQuota: null })).toEqual({
      memoryMax: 64 * MiB,
      tasksMax: 512,
      cpuQuota: 80,
      sources: { memoryMax: 'document', tasksMax: 'config', cpuQuota: 'config' },
    });
  });

  it('never goes above the ceiling, even when handed a higher request', () => {
    expect(applyLimitRequest(CEILING, { memoryMax: 1024 * MiB, tasksMax: 9999, cpuQuota: 300 })).toMatchObject({
      memoryMax: 256 * MiB,
      tasksMax: 512,
      cpuQuota: 80,
    });
  });
});

describe('the sentences', () => {
  const limits = applyLimitRequest(CEILING, { memoryMax: null, tasksMax: 32, cpuQuota: null });
  it('name the limit and where it came from', () => {
    expect(describeOutOfMemory(limits)).toBe("out of memory: the job's memory limit is 256 MiB (jobs.memory_max)");
    expect(describeTasksMax(limits)).toBe("stopped at the task limit: the job may have 32 processes and threads at once (the job's limits.tasksMax)");
    expect(describeLimits(limits)).toBe('memory 256 MiB, 32 tasks, CPU 80%');
    expect(describeLimits({ memoryMax: null, tasksMax: null, cpuQuota: null })).toBe('no memory limit, no task limit, no CPU quota');
  });

  it('format bytes and the quota as systemd takes it', () => {
    expect([formatBytes(100), formatBytes(1536), formatBytes(256 * MiB), formatBytes(1.5 * 1024 * MiB)]).toEqual([
      '100 bytes',
      '1.5 KiB',
      '256 MiB',
      '1.5 GiB',
    ]);
    expect([quotaPerSecUsec(20), quotaPerSecUsec(80), quotaPerSecUsec(250), quotaPerSecUsec(0.01)]).toEqual([200_000, 800_000, 2_500_000, 1000]);
  });
});
