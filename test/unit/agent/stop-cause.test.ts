import { describe, expect, it } from 'vitest';
import { cutStepResult, decideStopCause, type PlannedRun, type StopEvidence } from '../../../src/agent/stop-cause.js';
import { createStepResult } from '../../../src/jobs/step-result.js';

const UNIT = 'cloudjobs.service';
const restartJob = { id: 812, type: 'restart' };
const run = (argv: string[], over: Partial<PlannedRun> = {}): PlannedRun => ({ index: 1, argv, user: 'root', inGroup: false, ...over });
const evidence = (over: Partial<StopEvidence>): StopEvidence => ({ unit: UNIT, unitJob: restartJob, running: [], ...over });

describe('decideStopCause: root is believed, processes are not', () => {
  it('drains outside systemd, with no job queued, and on a stop (shutdown, systemctl stop, package removal)', () => {
    expect(decideStopCause(evidence({ unit: null, unitJob: null }))).toEqual({ kind: 'outside', evidence: 'the agent does not run as a systemd unit' });
    expect(decideStopCause(evidence({ unitJob: null }))).toEqual({ kind: 'outside', evidence: 'systemd has no job queued for cloudjobs.service (a signal, not a restart)' });
    expect(decideStopCause(evidence({ unitJob: { id: 9, type: 'stop' } }))).toEqual({
      kind: 'outside',
      evidence: 'systemd job 9 (stop cloudjobs.service) is not a restart',
    });
  });

  it('does not look at argv at all without root’s restart: a step named like a restart is still a drain', () => {
    const running = [run(['systemctl', 'restart', 'cloudjobs']), run(['dpkg', '-i', 'x.deb'], { index: 2 })];
    expect(decideStopCause(evidence({ unitJob: null, running })).kind).toBe('outside');
    expect(decideStopCause(evidence({ unitJob: { id: 3, type: 'stop' }, running: [run(['systemctl', 'restart', 'cloudjobs'])] })).kind).toBe('outside');
  });

  it('is a restart when root queued one: whatever runs ends by itself first', () => {
    expect(decideStopCause(evidence({}))).toEqual({ kind: 'restart', evidence: 'systemd job 812 (restart cloudjobs.service)' });
    expect(decideStopCause(evidence({ running: [run(['dpkg', '-i', '/tmp/c.deb'])] })).kind).toBe('restart');
    expect(decideStopCause(evidence({ running: [run(['sleep', '100'])] })).kind).toBe('restart');
  });

  it('is a restart command only for the single root step whose document restarts this unit', () => {
    expect(decideStopCause(evidence({ running: [run(['systemctl', 'restart', 'cloudjobs'])] }))).toEqual({
      kind: 'restart-command',
      evidence: 'systemd job 812 (restart cloudjobs.service)',
      command: 'systemctl restart cloudjobs',
      stepIndex: 1,
    });
    expect(decideStopCause(evidence({ running: [run(['/usr/bin/systemctl', '--no-ask-password', 'try-restart', 'cloudjobs.service'])] })).kind).toBe('restart-command');
    expect(decideStopCause(evidence({ running: [run(['service', 'cloudjobs', 'restart'])] })).kind).toBe('restart-command');
    expect(decideStopCause(evidence({ running: [run(['sh', '-c', 'echo hi; sudo systemctl restart cloudjobs'])] })).kind).toBe('restart-command');
    // another unit, another verb, another user, a parallel member, two steps: not this step's own restart
    expect(decideStopCause(evidence({ running: [run(['systemctl', 'restart', 'nginx'])] })).kind).toBe('restart');
    expect(decideStopCause(evidence({ running: [run(['systemctl', 'stop', 'cloudjobs'])] })).kind).toBe('restart');
    expect(decideStopCause(evidence({ running: [run(['systemctl', 'restart', 'cloudjobs'], { user: 'pi' })] })).kind).toBe('restart');
    expect(decideStopCause(evidence({ running: [run(['systemctl', 'restart', 'cloudjobs'], { inGroup: true })] })).kind).toBe('restart');
    expect(decideStopCause(evidence({ running: [run(['systemctl', 'restart', 'cloudjobs']), run(['sleep', '1'], { index: 2 })] })).kind).toBe('restart');
  });

  it('names the unit the agent really runs in', () => {
    const running = [run(['systemctl', 'restart', 'cloudjobs-test'])];
    expect(decideStopCause(evidence({ unit: 'cloudjobs-test.service', running })).kind).toBe('restart-command');
    expect(decideStopCause(evidence({ unit: 'other.service', running })).kind).toBe('restart');
  });

  it('bounds what it shows of a long command', () => {
    const cause = decideStopCause(evidence({ running: [run(['systemctl', 'restart', 'cloudjobs', 'x'.repeat(5000)])] }));
    expect(cause.kind === 'restart-command' && cause.command.length).toBe(201);
  });
});

describe('cutStepResult', () => {
  const killed = createStepResult(
    { name: 'Restart', argv: ['systemctl', 'restart', 'cloudjobs'], handler: null, user: 'root', startedAt: '2026-12-01T10:00:00.000Z' },
    { signal: 'SIGTERM', durationMs: 2500, stdout: 'waiting', stdoutBytes: 7, failed: true, failureReason: 'was killed by SIGTERM' },
  );

  it('keeps the real end (no exit code, the signal) and says it was cut and why; it does not fail the job', () => {
    const cause = { kind: 'restart-command' as const, evidence: 'systemd job 812 (restart cloudjobs.service)', command: 'systemctl restart cloudjobs', stepIndex: 1 };
    const result = cutStepResult(killed, cause);
    expect(result).toMatchObject({ exitCode: null, signal: 'SIGTERM', failed: false, failureReason: null, durationMs: 2500 });
    expect(result.stdout).toBe(
      'waiting\n[cut: the step restarts the agent (systemctl restart cloudjobs); systemd job 812 (restart cloudjobs.service) was under way, so the agent stopped the step and the job goes on in the next agent process]\n',
    );
    expect(result.stdoutBytes).toBe(Buffer.byteLength(result.stdout));
  });
});
