import { describe, expect, it } from 'vitest';
import { describeLimitSupport } from '../../../src/cli/check-config-command.js';

describe('check-config: the resource limits line', () => {
  it('says the limits are not enforced, and why, where the agent cannot create units', async () => {
    const jobs = { memory_max: 268_435_456, tasks_max: 512, cpu_quota: 0.8 };
    expect(await describeLimitSupport(jobs, 1000)).toBe(
      'resource limits: NOT enforced (the agent is not root (uid 1000) and cannot create systemd units for jobs); jobs run without memory 256 MiB, 512 tasks, CPU 80%\n',
    );
  });
});
