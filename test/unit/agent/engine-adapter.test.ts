// The engine's NSS user cache ages by elapsed time: a wall clock set back an
// hour (NTP on a Pi without RTC) must not keep an account change unseen for that hour.
import os from 'node:os';
import { describe, expect, it } from 'vitest';
import { createEngine } from '../../../src/agent/engine-adapter.js';
import { createManualClock } from '../../../src/clock/clock.js';
import type { JobOffer } from '../../../src/contract/types.js';
import { createNullLog } from '../../../src/log/log.js';
import type { UserInfo } from '../../../src/jobs/users.js';

const USER = os.userInfo().username;
const offer: JobOffer = {
  jobId: 'job-1',
  jobName: 'job 1',
  timeoutSeconds: 30,
  createdAt: null,
  document: { version: '1.0', steps: [{ action: { name: 'one', type: 'runCommand', input: { command: ['true'] } } }] },
};

describe('createEngine user cache', () => {
  it('looks a user up again after 60 s of elapsed time, whatever the wall clock did', async () => {
    const clock = createManualClock(1_000_000);
    let lookups = 0;
    const gid = process.getgid?.() ?? 0;
    const info: UserInfo = { name: USER, uid: process.getuid?.() ?? 0, gid, home: '/', shell: '/bin/sh', groups: [gid] };
    const engine = createEngine({
      jobs: {
        enabled: true, run_as_user: USER, allowed_users: [], handler_dirs: [], work_dir: '/nonexistent', default_timeout: 60_000,
        kill_grace: 200, max_output: 65_536, progress_interval: 50, max_parallel: 2, path: '/usr/bin:/bin', max_reboots: 3,
        reboot_timeout: 600_000, reboot_command: 'systemctl reboot',
      } as Parameters<typeof createEngine>[0]['jobs'],
      agentVersion: '9.9.9-test',
      clock,
      log: createNullLog(),
      lookupUser: async () => {
        lookups += 1;
        return info;
      },
      agentUid: process.getuid?.() ?? 0,
    });
    await engine.validate(offer);
    expect(lookups).toBe(1);
    clock.stepWall(-3600_000);
    await clock.advance(30_000);
    await engine.validate(offer);
    expect(lookups).toBe(1);
    await clock.advance(30_000);
    await engine.validate(offer);
    expect(lookups).toBe(2);
  });
});
