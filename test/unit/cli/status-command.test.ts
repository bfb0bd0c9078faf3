// `cloudjobs status` shows server text (job names, ids, step names) inert: one
// line each, no terminal escapes (issue 16 item 5; status.json is world-readable).
import { describe, expect, it } from 'vitest';
import { formatJobLimits, formatStatus } from '../../../src/cli/status-command.js';

describe('formatStatus', () => {
  it('escapes control characters of the current job and step', () => {
    const now = 1_000_000;
    const text = formatStatus(
      {
        state: 'running',
        polling: true,
        currentJob: { jobId: 'j\u001b[2J', jobName: 'evil\nstate:          idle', step: 'st\u009bep', stepIndex: 1, stepCount: 2, startedAt: now },
        outbox: { count: 0, bytes: 0, oldestAgeSeconds: null },
        updatedAt: now,
      },
      now,
    );
    expect(text).not.toMatch(/[\u001b\u009b]/);
    expect(text.split('\n').filter((line) => line.startsWith('state:'))).toEqual(['state:          running']);
    expect(text).toContain('current job:    evil\\nstate:          idle (j\\u001b[2J), step 1/2: st\\u009bep');
  });
});

describe('formatStatus: a resumed job', () => {
  it('says how many reboots the current job went through', () => {
    const job = { jobId: 'j1', jobName: 'update', step: 'apt', stepIndex: 2, stepCount: 3, startedAt: 1 };
    expect(formatStatus({ state: 'running', currentJob: { ...job, reboots: 2 }, updatedAt: 1 }, 1)).toContain('current job:    update (j1), step 2/3: apt, after 2 reboots\n');
    expect(formatStatus({ state: 'running', currentJob: { ...job, reboots: 0 }, updatedAt: 1 }, 1)).toContain('current job:    update (j1), step 2/3: apt\n');
  });
});

describe('formatStatus: signatures', () => {
  it('shows whether signatures are required and which key ids are trusted', () => {
    const base = { state: 'idle' as const, updatedAt: 1 };
    expect(formatStatus({ ...base, signatures: { required: true, trustedKeyIds: ['0a1b2c3d4e5f6071', '1111111111111111'], trustedKeysDir: '/k' } }, 1)).toContain(
      'signatures:     required; trusted keys 0a1b2c3d4e5f6071, 1111111111111111\n',
    );
    expect(formatStatus({ ...base, signatures: { required: false, trustedKeyIds: [], trustedKeysDir: '/k' } }, 1)).toContain(
      'signatures:     not required (a signed document is still checked); no trusted key in /k\n',
    );
  });
});

describe('formatJobLimits', () => {
  it('shows the limits in force, whether enforced, and the peak memory', () => {
    expect(
      formatJobLimits({ enforced: true, memory_max: 67_108_864, tasks_max: 64, cpu_quota_percent: 80, memory_peak: 12_845_056, from_document: [] }),
    ).toBe('memory 64 MiB, 64 tasks, CPU 80% (enforced), peak memory 12.3 MiB');
    expect(formatJobLimits({ enforced: false, why: 'systemd is not running', memory_max: null, tasks_max: 512, cpu_quota_percent: null })).toBe(
      'no memory limit, 512 tasks, no CPU quota (not enforced: systemd is not running)',
    );
  });

  it('is a line of the running job in cloudjobs status', () => {
    const text = formatStatus(
      {
        state: 'running',
        currentJob: { jobId: 'j1', jobName: 'Update', step: 'Build', stepIndex: 1, stepCount: 2, startedAt: 0, limits: { enforced: true, memory_max: 1_048_576 * 256, tasks_max: 512, cpu_quota_percent: 80, memory_peak: null } },
      },
      0,
    );
    expect(text).toContain('\njob limits:     memory 256 MiB, 512 tasks, CPU 80% (enforced)\n');
  });
});
