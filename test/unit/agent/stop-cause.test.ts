import { describe, expect, it } from 'vitest';
import { decideStopCause, restartedStepResult } from '../../../src/agent/stop-cause.js';
import type { StepSpec } from '../../../src/jobs/types.js';

describe('decideStopCause', () => {
  it('is outside when nothing of the job touches packages or the unit', () => {
    expect(decideStopCause([])).toEqual({ kind: 'outside' });
    expect(decideStopCause([['/bin/sh', '-c', 'sleep 100'], ['sleep', '100']])).toEqual({ kind: 'outside' });
    expect(decideStopCause([['systemctl', 'restart', 'nginx']])).toEqual({ kind: 'outside' });
    expect(decideStopCause([['systemctl', 'status', 'cloudjobs']])).toEqual({ kind: 'outside' });
    expect(decideStopCause([['/usr/bin/dpkgx', '-i', 'x.deb']])).toEqual({ kind: 'outside' });
  });

  it('is a package install when dpkg, apt or the cloudjobs postinst runs in the job', () => {
    expect(decideStopCause([['/bin/sh', '-c', 'dpkg -i /tmp/c.deb'], ['dpkg', '-i', '/tmp/c.deb']])).toEqual({
      kind: 'package',
      command: 'dpkg -i /tmp/c.deb',
    });
    expect(decideStopCause([['/usr/bin/apt-get', 'install', '-y', './cloudjobs_0.3.0-1_amd64.deb']]).kind).toBe('package');
    expect(decideStopCause([['/bin/sh', '/var/lib/dpkg/info/cloudjobs.postinst', 'configure', '0.2.0-1']]).kind).toBe('package');
  });

  it('lets the package install decide when its postinst runs a restart', () => {
    const cause = decideStopCause([
      ['systemctl', 'try-restart', 'cloudjobs.service'],
      ['/usr/bin/dpkg', '--status-fd', '50', '--configure', '--pending'],
    ]);
    expect(cause).toEqual({ kind: 'package', command: '/usr/bin/dpkg --status-fd 50 --configure --pending' });
  });

  it('is a restart command when a step waits for the agent unit to restart or stop', () => {
    expect(decideStopCause([['systemctl', 'restart', 'cloudjobs']])).toEqual({ kind: 'restart-command', command: 'systemctl restart cloudjobs' });
    expect(decideStopCause([['/usr/bin/systemctl', '--no-ask-password', 'try-restart', 'cloudjobs.service']]).kind).toBe('restart-command');
    expect(decideStopCause([['service', 'cloudjobs', 'restart']]).kind).toBe('restart-command');
    expect(decideStopCause([['deb-systemd-invoke', 'restart', 'cloudjobs.service']]).kind).toBe('restart-command');
    expect(decideStopCause([['systemctl', 'stop', 'cloudjobs.service']]).kind).toBe('restart-command');
  });

  it('bounds what it shows of a hostile command line', () => {
    const cause = decideStopCause([['dpkg', '-i', 'x'.repeat(5000)]]);
    expect(cause.kind).toBe('package');
    expect(cause.kind !== 'outside' && cause.command.length).toBe(201);
  });
});

describe('restartedStepResult', () => {
  const spec: StepSpec = {
    name: 'Restart',
    action: { type: 'runCommand', argv: ['systemctl', 'restart', 'cloudjobs'], shell: false },
    user: 'root',
    allowStdErr: 0,
    ignoreStepFailure: false,
    timeoutMs: null,
  };

  it('is a success that says the restart was requested by the step', () => {
    const result = restartedStepResult(spec, '2026-12-01T10:00:00.000Z', Date.parse('2026-12-01T10:00:02.500Z'), 'systemctl restart cloudjobs');
    expect(result).toMatchObject({
      name: 'Restart',
      argv: ['systemctl', 'restart', 'cloudjobs'],
      exitCode: 0,
      failed: false,
      failureReason: null,
      durationMs: 2500,
      startedAt: '2026-12-01T10:00:00.000Z',
    });
    expect(result.stdout).toBe('restart requested by the step (systemctl restart cloudjobs); the agent restarted and went on with the next step\n');
    expect(result.stdoutBytes).toBe(result.stdout.length);
  });
});

describe('decideStopCause on shell steps', () => {
  it('looks into the script of sh -c', () => {
    expect(decideStopCause([['/bin/sh', '-c', 'apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y cloudjobs']]).kind).toBe('package');
    expect(decideStopCause([['sh', '-c', 'echo hi; sudo systemctl restart cloudjobs']]).kind).toBe('restart-command');
    expect(decideStopCause([['bash', '-c', 'echo dpkg is fine to say']]).kind).toBe('outside');
  });
});

describe('decideStopCause and the self-update handler', () => {
  it('counts the shipped handler as a package install, by its path as argv[0] or as the script of a shell', () => {
    expect(decideStopCause([['/bin/sh', '/usr/lib/cloudjobs/handlers/self-update', 'root', '/tmp/c.deb', 'a'.repeat(64)]]).kind).toBe('package');
    expect(decideStopCause([['/etc/cloudjobs/handlers/self-update', 'x']]).kind).toBe('package');
    expect(decideStopCause([['/home/pi/self-update']]).kind).toBe('outside');
  });
});
