import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { startJob, type JobRun } from '../../../src/jobs/engine.js';
import type { StepResult } from '../../../src/jobs/types.js';
import { AGENT_USER, commandStep, makeJob, makeOptions, SCRIPTS, scriptStep, STEP_PATH } from './engine-helpers.js';

const cleanups: string[] = [];
afterEach(async () => {
  for (const dir of cleanups.splice(0)) await rm(dir, { recursive: true, force: true });
});

async function options(extra: Parameters<typeof makeOptions>[0] = {}) {
  const built = await makeOptions(extra);
  cleanups.push(built.workDir);
  return built;
}

async function scratch(): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'cloudjobs-scratch-'));
  cleanups.push(dir);
  return dir;
}

function details(report: { status_details: Record<string, unknown> }): Record<string, unknown>[] {
  return report.status_details.steps as Record<string, unknown>[];
}

// Waits (real time, not asserted) until the running job's output shows `text`.
async function waitForOutput(run: JobRun, text: string): Promise<void> {
  for (let i = 0; i < 400; i += 1) {
    if (run.snapshot().stdout.includes(text)) return;
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  throw new Error(`output never showed ${JSON.stringify(text)}`);
}

describe('startJob outcomes', () => {
  it('runs every step and reports SUCCEEDED with headed output', async () => {
    const job = makeJob([scriptStep('First', 'exit-code.sh', ['0', 'a']), scriptStep('Second', 'exit-code.sh', ['0', 'b'])]);
    const report = await startJob(job, await options(), {}).done;
    expect(report.status).toBe('SUCCEEDED');
    expect(report.reason).toBe('2 of 2 steps succeeded');
    expect(report.exit_code).toBe(0);
    expect(report.executed_steps).toBe(2);
    expect(report.failed_step).toBeNull();
    expect(report.stdout).toBe('=== Step: First ===\nargs: 0 a\n=== Step: Second ===\nargs: 0 b\n');
    expect(report.stderr).toBe('');
    expect(report.status_details.agent_version).toBe('9.9.9-test');
    expect(details(report)[1]).toMatchObject({
      name: 'Second',
      user: AGENT_USER,
      exit_code: 0,
      signal: null,
      timed_out: false,
      canceled: false,
      stdout_bytes: 10,
      stderr_bytes: 0,
      stdout_truncated: false,
      failure_reason: null,
      ignored: false,
    });
  });

  it('fails on a non-zero exit, reports that step and skips the rest', async () => {
    const job = makeJob([
      scriptStep('Ok', 'exit-code.sh', ['0']),
      scriptStep('Check', 'exit-code.sh', ['3']),
      scriptStep('Never', 'exit-code.sh', ['0']),
    ]);
    const report = await startJob(job, await options(), {}).done;
    expect(report.status).toBe('FAILED');
    expect(report.reason).toBe('step 2 ("Check") failed: exited with code 3');
    expect(report.exit_code).toBe(3);
    expect(report.failed_step).toBe('Check');
    expect(report.executed_steps).toBe(2);
    expect(details(report).map((d) => d.name)).toEqual(['Ok', 'Check']);
  });

  it('fails a step that writes more stderr lines than allowStdErr', async () => {
    const job = makeJob([scriptStep('Warn', 'stderr-lines.sh', ['3'])]);
    const report = await startJob(job, await options(), {}).done;
    expect(report.status).toBe('FAILED');
    expect(report.reason).toBe('step 1 ("Warn") failed: wrote 3 lines to stderr, allowStdErr is 0');
    expect(report.exit_code).toBe(0);
    expect(report.stderr).toBe('=== Step: Warn ===\nwarning 0\nwarning 1\nwarning 2\n');
  });

  it('accepts stderr lines up to allowStdErr', async () => {
    const job = makeJob([scriptStep('Warn', 'stderr-lines.sh', ['3'], { allowStdErr: 3 })]);
    const report = await startJob(job, await options(), {}).done;
    expect(report.status).toBe('SUCCEEDED');
    expect(report.reason).toBe('1 of 1 steps succeeded');
  });

  it('does not fail the job for a step with ignoreStepFailure, and still runs the finalStep', async () => {
    const marks = path.join(await scratch(), 'marks');
    const job = makeJob(
      [scriptStep('Flaky', 'exit-code.sh', ['5'], { ignoreStepFailure: true }), scriptStep('Next', 'mark.sh', [marks, 'next'])],
      { finalStep: scriptStep('Final', 'mark.sh', [marks, 'final']) },
    );
    const report = await startJob(job, await options(), {}).done;
    expect(report.status).toBe('SUCCEEDED');
    expect(report.reason).toBe('2 of 3 steps succeeded, 1 failed with ignoreStepFailure set');
    expect(report.failed_step).toBeNull();
    expect(details(report)[0]).toMatchObject({ exit_code: 5, ignored: true, failure_reason: 'exited with code 5' });
    expect(await readFile(marks, 'utf8')).toBe('next\nfinal\n');
  });

  it('runs finalStep only when every step succeeded', async () => {
    const dir = await scratch();
    const okMarks = path.join(dir, 'ok');
    const badMarks = path.join(dir, 'bad');
    const final = (file: string) => scriptStep('Final', 'mark.sh', [file, 'final']);
    const ok = await startJob(makeJob([scriptStep('A', 'mark.sh', [okMarks, 'a'])], { finalStep: final(okMarks) }), await options(), {}).done;
    expect(ok.status).toBe('SUCCEEDED');
    expect(ok.executed_steps).toBe(2);
    expect(await readFile(okMarks, 'utf8')).toBe('a\nfinal\n');
    const bad = await startJob(
      makeJob([scriptStep('A', 'mark.sh', [badMarks, 'a']), scriptStep('B', 'exit-code.sh', ['1'])], { finalStep: final(badMarks) }),
      await options(),
      {},
    ).done;
    expect(bad.status).toBe('FAILED');
    expect(bad.executed_steps).toBe(2);
    expect(await readFile(badMarks, 'utf8')).toBe('a\n');
  });

  it('fails a missing command with the PATH it searched', async () => {
    const report = await startJob(makeJob([commandStep('Missing', ['nosuchcmd', '-x'])]), await options(), {}).done;
    expect(report.status).toBe('FAILED');
    expect(report.reason).toBe(`step 1 ("Missing") failed: "nosuchcmd" not found in PATH (${STEP_PATH})`);
    expect(report.exit_code).toBeNull();
    expect(details(report)[0]).toMatchObject({ argv: ['nosuchcmd', '-x'], exit_code: null });
  });

  it('looks the command up in the step PATH', async () => {
    const report = await startJob(makeJob([commandStep('Echo', ['echo', 'hello', 'world'])]), await options(), {}).done;
    expect(report.status).toBe('SUCCEEDED');
    expect(report.stdout).toBe('=== Step: Echo ===\nhello world\n');
  });

  it('runs a handler with the run-as user as $1 and its args after it', async () => {
    const handlerPath = path.join(SCRIPTS, 'print-args.sh');
    const step = { ...scriptStep('Handler', 'print-args.sh'), action: { type: 'runHandler' as const, handlerPath, args: ['a b', 'c'] } };
    const report = await startJob(makeJob([step]), await options(), {}).done;
    expect(report.status).toBe('SUCCEEDED');
    expect(report.stdout).toBe(`=== Step: Handler ===\nuser=${AGENT_USER} args=a b c\n`);
    expect(details(report)[0]).toMatchObject({ handler: handlerPath, args: [AGENT_USER, 'a b', 'c'] });
  });

  it('fails a step whose user does not exist', async () => {
    const report = await startJob(makeJob([scriptStep('Ghost', 'exit-code.sh', ['0'], { user: 'nosuchuser' })]), await options(), {}).done;
    expect(report.status).toBe('FAILED');
    expect(report.reason).toBe('step 1 ("Ghost") failed: user "nosuchuser" does not exist');
  });

  it('gives a step EOF on stdin', async () => {
    const report = await startJob(makeJob([scriptStep('Stdin', 'read-stdin.sh')]), await options(), {}).done;
    expect(report.status).toBe('SUCCEEDED');
    expect(report.stdout).toBe('=== Step: Stdin ===\nstdin bytes: 0\n');
  });

  it('omits stdout when includeStdOut is false but keeps stderr', async () => {
    const job = makeJob([scriptStep('Warn', 'stderr-lines.sh', ['1'], { allowStdErr: 1 })], { includeStdOut: false });
    const report = await startJob(job, await options(), {}).done;
    expect(report.stdout).toBe('');
    expect(report.stderr).toBe('=== Step: Warn ===\nwarning 0\n');
  });

  it('names a step without a name by its number', async () => {
    const report = await startJob(makeJob([scriptStep('step 1', 'exit-code.sh', ['2'])]), await options(), {}).done;
    expect(report.reason).toBe('step 1 failed: exited with code 2');
    expect(report.failed_step).toBe('step 1');
  });

  it('cuts failed_step to 255 characters for a 10 KB step name', async () => {
    const name = 'n'.repeat(10_240);
    const report = await startJob(makeJob([scriptStep(name, 'exit-code.sh', ['1'])]), await options(), {}).done;
    expect(report.status).toBe('FAILED');
    expect(report.failed_step).toBe('n'.repeat(255));
  });
});

describe('startJob parallel groups', () => {
  it('runs every member and succeeds when all succeed', async () => {
    const marks = path.join(await scratch(), 'marks');
    const members = ['a', 'b', 'c'].map((m) => scriptStep(`M${m}`, 'mark.sh', [marks, m]));
    const job = makeJob([{ kind: 'parallel', name: 'Group', members }, scriptStep('After', 'mark.sh', [marks, 'after'])]);
    const report = await startJob(job, await options({ maxParallel: 2 }), {}).done;
    expect(report.status).toBe('SUCCEEDED');
    expect(report.executed_steps).toBe(4);
    const lines = (await readFile(marks, 'utf8')).trim().split('\n');
    expect(lines.slice(0, 3).sort()).toEqual(['a', 'b', 'c']);
    expect(lines[3]).toBe('after');
  });

  it('fails the group when a member fails, skips members not started and the steps after', async () => {
    const marks = path.join(await scratch(), 'marks');
    const members = [scriptStep('Bad', 'exit-code.sh', ['4']), scriptStep('Later', 'mark.sh', [marks, 'later'])];
    const job = makeJob([{ kind: 'parallel', name: 'Group', members }, scriptStep('After', 'mark.sh', [marks, 'after'])]);
    const report = await startJob(job, await options({ maxParallel: 1 }), {}).done;
    expect(report.status).toBe('FAILED');
    expect(report.reason).toBe('step 1.1 ("Bad") failed: exited with code 4');
    expect(report.executed_steps).toBe(1);
    await expect(readFile(marks, 'utf8')).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('does not fail the group for an ignored member failure', async () => {
    const members = [scriptStep('Bad', 'exit-code.sh', ['4'], { ignoreStepFailure: true }), scriptStep('Good', 'exit-code.sh', ['0'])];
    const report = await startJob(makeJob([{ kind: 'parallel', name: 'Group', members }]), await options(), {}).done;
    expect(report.status).toBe('SUCCEEDED');
    expect(report.executed_steps).toBe(2);
  });
});

describe('startJob stopping', () => {
  it('times the job out, naming the step and the job limit, with partial output', async () => {
    const job = makeJob([scriptStep('Quick', 'exit-code.sh', ['0']), scriptStep('Sleep', 'sleep-then.sh', ['30'])], { timeoutMs: 4000 });
    const report = await startJob(job, await options(), {}).done;
    expect(report.status).toBe('TIMED_OUT');
    expect(report.reason).toBe(`step 2 ("Sleep") was stopped: the job's time limit of 4s ran out`);
    expect(report.failed_step).toBe('Sleep');
    expect(report.stdout).toBe('=== Step: Quick ===\nargs: 0\n=== Step: Sleep ===\nstarted\n');
    expect(details(report)[1]).toMatchObject({ timed_out: true, canceled: false, signal: 'SIGTERM', exit_code: null });
  });

  it("times a step out by its own limit", async () => {
    const job = makeJob([scriptStep('Sleep', 'sleep-then.sh', ['30'], { timeoutMs: 300 }), scriptStep('Never', 'exit-code.sh', ['0'])]);
    const report = await startJob(job, await options(), {}).done;
    expect(report.status).toBe('TIMED_OUT');
    expect(report.reason).toBe('step 1 ("Sleep") was stopped: its time limit of 300ms ran out');
    expect(report.executed_steps).toBe(1);
  });

  it('SIGKILLs a step that ignores SIGTERM after the grace', async () => {
    const job = makeJob([scriptStep('Stubborn', 'ignore-term.sh', [], { timeoutMs: 1500 })]);
    const report = await startJob(job, await options({ killGraceMs: 200 }), {}).done;
    expect(report.status).toBe('TIMED_OUT');
    expect(report.stdout).toBe('=== Step: Stubborn ===\nignoring TERM\n');
    expect(details(report)[0]).toMatchObject({ signal: 'SIGKILL', timed_out: true });
  });

  it('cancels a running job: CANCELED, the rest skipped', async () => {
    const job = makeJob([scriptStep('Sleep', 'sleep-then.sh', ['30']), scriptStep('Never', 'exit-code.sh', ['0'])]);
    const run = startJob(job, await options(), {});
    await waitForOutput(run, 'started');
    run.stop('cancel');
    const report = await run.done;
    expect(report.status).toBe('CANCELED');
    expect(report.reason).toBe('step 1 ("Sleep") was stopped: the job was canceled');
    expect(report.executed_steps).toBe(1);
    expect(details(report)[0]).toMatchObject({ canceled: true, timed_out: false, signal: 'SIGTERM' });
  });

  it('stops for shutdown: FAILED with "stopped by agent shutdown"', async () => {
    const job = makeJob([scriptStep('Sleep', 'sleep-then.sh', ['30'])]);
    const run = startJob(job, await options(), {});
    await waitForOutput(run, 'started');
    run.stop('shutdown');
    const report = await run.done;
    expect(report.status).toBe('FAILED');
    expect(report.reason).toBe('stopped by agent shutdown');
    expect(report.failed_step).toBe('Sleep');
  });

  it('cancels before any step ran', async () => {
    const run = startJob(makeJob([scriptStep('A', 'exit-code.sh', ['0'])]), await options(), {});
    run.stop('cancel');
    const report = await run.done;
    expect(report.status).toBe('CANCELED');
    expect(report.reason).toBe('the job was canceled after 0 of 1 steps');
    expect(report.executed_steps).toBe(0);
  });

  it('leaves no daemon behind when a step forks one with setsid and exits', async () => {
    const pidFile = path.join(await scratch(), 'daemon.pid');
    const report = await startJob(makeJob([scriptStep('Daemon', 'fork-daemon.sh', [pidFile])]), await options(), {}).done;
    expect(report.status).toBe('SUCCEEDED');
    const pid = Number((await readFile(pidFile, 'utf8')).trim());
    expect(pid).toBeGreaterThan(1);
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => null);
    const state = stat === null ? 'gone' : stat.slice(stat.lastIndexOf(')') + 2).split(' ')[0];
    expect(['gone', 'Z', 'X']).toContain(state);
  });

  it('ends a step whose background child still holds stdout', async () => {
    const report = await startJob(makeJob([scriptStep('Bg', 'background-child.sh')]), await options(), {}).done;
    expect(report.status).toBe('SUCCEEDED');
    expect(report.stdout).toBe('=== Step: Bg ===\nleft a child\n');
  });
});

describe('startJob output', () => {
  it('keeps memory bounded for huge output without newlines', async () => {
    const job = makeJob([scriptStep('Flood', 'flood.sh', ['64', 'both'], { allowStdErr: 1 })]);
    const report = await startJob(job, await options({ maxOutput: 4096 }), {}).done;
    const mib64 = 64 * 1048576;
    expect(report.status).toBe('SUCCEEDED');
    expect(details(report)[0]).toMatchObject({
      stdout_bytes: mib64,
      stderr_bytes: mib64,
      stdout_truncated: true,
      stderr_truncated: true,
    });
    expect(report.stdout).toBe(`=== Step: Flood ===\n${'x'.repeat(2048)}\n[... ${mib64 - 4096} bytes omitted ...]\n${'x'.repeat(2048)}\n`);
    expect(report.stderr).toBe(`=== Step: Flood ===\n${'y'.repeat(2048)}\n[... ${mib64 - 4096} bytes omitted ...]\n${'y'.repeat(2048)}\n`);
  });

  it('calls reclaimMemory once per 4 MiB of output read, counting both streams', async () => {
    let calls = 0;
    const job = makeJob([scriptStep('Flood', 'flood.sh', ['16', 'both'], { allowStdErr: 1 })]);
    const report = await startJob(job, await options({ maxOutput: 4096, reclaimMemory: () => (calls += 1) }), {}).done;
    expect(report.status).toBe('SUCCEEDED');
    // 32 MiB read in chunks of at most 64 KiB: one call as each 4 MiB is passed, the last one maybe not yet
    expect(calls).toBeGreaterThanOrEqual(7);
    expect(calls).toBeLessThanOrEqual(8);
    let quietCalls = 0;
    const quiet = await startJob(makeJob([commandStep('Echo', ['echo', 'hi'])]), await options({ reclaimMemory: () => (quietCalls += 1) }), {}).done;
    expect(quiet.status).toBe('SUCCEEDED');
    expect(quietCalls).toBe(0);
  });

  it('turns NUL bytes and invalid UTF-8 into valid text and valid JSON', async () => {
    const report = await startJob(makeJob([scriptStep('Bytes', 'weird-bytes.sh')]), await options(), {}).done;
    expect(report.stdout).toBe('=== Step: Bytes ===\na\u2400b\uFFFD\uFFFDc\uFFFD(d\n');
    expect(JSON.parse(JSON.stringify(report))).toEqual(report);
  });
});

describe('startJob hooks and progress', () => {
  it('awaits onStepEnd before the next step starts', async () => {
    const events: string[] = [];
    const job = makeJob([scriptStep('A', 'exit-code.sh', ['0']), scriptStep('B', 'exit-code.sh', ['0'])]);
    const report = await startJob(job, await options(), {
      onStepStart: (index, total, name) => {
        events.push(`start ${index}/${total} ${name}`);
      },
      onStepEnd: async (result: StepResult, index) => {
        events.push(`end ${index} ${result.name} ${result.exitCode}`);
        await new Promise((resolve) => setTimeout(resolve, 50));
        events.push(`stored ${index}`);
      },
    }).done;
    expect(report.status).toBe('SUCCEEDED');
    expect(events).toEqual(['start 1/2 A', 'end 1 A 0', 'stored 1', 'start 2/2 B', 'end 2 B 0', 'stored 2']);
  });

  it('snapshots an IN_PROGRESS report with steps done and output so far', async () => {
    const job = makeJob([scriptStep('Quick', 'exit-code.sh', ['0']), scriptStep('Sleep', 'sleep-then.sh', ['30'])]);
    const run = startJob(job, await options(), {});
    await waitForOutput(run, 'started');
    const snap = run.snapshot();
    run.stop('cancel');
    await run.done;
    expect(snap.status).toBe('IN_PROGRESS');
    expect(snap.executed_steps).toBe(1);
    expect(snap.reason).toBe('1 of 2 steps done; running step 2 ("Sleep")');
    expect(snap.stdout).toBe('=== Step: Quick ===\nargs: 0\n=== Step: Sleep ===\nstarted\n');
    expect(details(snap).map((d) => d.name)).toEqual(['Quick']);
    expect(snap.status_details.running).toEqual(['Sleep']);
  });
});

describe('startJob work_dir', () => {
  it('refuses a group- or world-writable work_dir and runs nothing', async () => {
    const opts = await options();
    const { chmod } = await import('node:fs/promises');
    await chmod(opts.workDir, 0o777);
    const report = await startJob(makeJob([scriptStep('A', 'exit-code.sh', ['0'])]), opts, {}).done;
    expect(report.status).toBe('FAILED');
    expect(report.reason).toBe(
      `no step ran: work_dir ${opts.workDir} is group- or world-writable (mode 777); fix with: chmod go-w ${opts.workDir}`,
    );
    expect(report.executed_steps).toBe(0);
  });

  it('creates a missing work_dir and removes the job directory afterwards', async () => {
    const parent = await scratch();
    const workDir = path.join(parent, 'nested', 'work');
    const report = await startJob(makeJob([commandStep('Pwd', ['pwd'])]), await makeOptions({ workDir }), {}).done;
    expect(report.status).toBe('SUCCEEDED');
    const cwd = report.stdout.split('\n')[1] ?? '';
    expect(path.dirname(cwd)).toBe(workDir);
    expect(path.basename(cwd).startsWith(`job-1.${AGENT_USER}.`)).toBe(true);
    expect(await readdir(workDir)).toEqual([]);
  });
});
