// Issue 4, "Done when" 3: a state file truncated to every length from 0 to its
// full size: the agent starts, quarantines it (moved to *.corrupt-*), says so
// in one warning naming the file, and runs the next job normally.
//
// The files are real: a journal entry and an outbox report of a job the agent
// was running when it got kill -9 (cloud down), and the history entry of a job
// it finished. Every length is covered: for each kind, one agent start with a
// truncated copy at every length (distinct valid file names) in its directory.
// A sample of lengths is also tested alone, one agent start each, the way it
// happens in the field (the file under its own name).
import { createHash } from 'node:crypto';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ReferenceCloud } from '../cloud/reference-cloud.js';
import {
  appendJob,
  createSharedDir,
  expectOneFinalLast,
  killHard,
  listFiles,
  outputLines,
  reapOrphanSteps,
} from './durability-helpers.js';
import {
  commandJob,
  createAgentDirs,
  removeDirs,
  startAgent,
  startCloudWithDevice,
  stopAgent,
  type AgentDirs,
  type AgentProcess,
  type TestDevice,
} from './harness.js';

type Kind = 'journal' | 'outbox' | 'history';

interface RealFile {
  kind: Kind;
  name: string;
  bytes: Buffer;
}

let cloud: ReferenceCloud;
let device: TestDevice;
const real = new Map<Kind, RealFile>();
const cleanups: AgentDirs[] = [];
const agents: AgentProcess[] = [];
let interruptedJobId = '';
let undeliveredJobId = '';
let journalStepLog: { name: string; bytes: Buffer };

// Makes the real files: a finished job whose final report the cloud does not take (history,
// outbox), then a job killed mid-step (journal). Progress reports are never written.
beforeAll(async () => {
  ({ cloud, device } = await startCloudWithDevice());
  const dirs = await createAgentDirs(cloud, device, { jobs: { progress_interval: '1h' } });
  cleanups.push(dirs);
  const shared = await createSharedDir(dirs);
  const done = cloud.queueJob(device.uuid, { name: 'finished job', document: commandJob(['/bin/echo', 'finished']) });
  const killed = cloud.queueJob(device.uuid, { name: 'killed job', document: appendJob(`${shared}/killed.log`, 3, 30) });
  interruptedJobId = killed.job_id;
  undeliveredJobId = done.job_id;
  // the cloud takes no report of either job: the finished job's final stays in the outbox
  cloud.injectFault({ kind: 'drop', times: 'always', match: `^PATCH .*/jobs/(${done.job_id}|${killed.job_id})/status$` });
  const agent = startAgent(dirs);
  agents.push(agent);
  await agent.waitForOutput(/job finished job ended SUCCEEDED/);
  await agent.waitForOutput(/starting step 1 jobId=\S+ jobName="killed job"/);
  await agent.waitForOutput(/sending the IN_PROGRESS report failed/);
  await killHard(agent);
  await reapOrphanSteps([killed.job_id], 0);
  cloud.clearFaults();
  for (const kind of ['journal', 'outbox', 'history'] as const) {
    const dir = path.join(dirs.stateDir, kind);
    // the journal also holds the killed job's step log (<key>.steps; its truncation: test/unit/state/journal.test.ts)
    const names = (await listFiles(dir)).names.filter((n) => !n.startsWith('.') && n.endsWith('.json'));
    expect(names, `${kind} files after the kill`).toHaveLength(1);
    real.set(kind, { kind, name: names[0]!, bytes: await readFile(path.join(dir, names[0]!)) });
  }
  const stepLogName = real.get('journal')!.name.replace(/\.json$/, '.steps');
  journalStepLog = { name: stepLogName, bytes: await readFile(path.join(dirs.stateDir, 'journal', stepLogName)) };
  console.log(`real state files: ${[...real.values()].map((f) => `${f.kind}/${f.name} ${f.bytes.length} bytes`).join(', ')}`);
}, 60_000);

afterAll(async () => {
  for (const agent of agents) await stopAgent(agent);
  await cloud?.close();
  for (const dirs of cleanups) await removeDirs(dirs);
});

// A file name the store reads, distinct per truncation length.
function copyName(kind: Kind, length: number): string {
  if (kind === 'outbox') return `${String(1_000_000 + length).padStart(16, '0')}.json`;
  return `trunc-${length}-${createHash('sha256').update(`${kind}:${length}`).digest('hex')}.json`;
}

// Asserts `file` was moved to `<file>.corrupt-<stamp>` with the same bytes and named in exactly one warning.
async function expectQuarantined(agent: AgentProcess, file: string, content: Buffer, dirNames: readonly string[]): Promise<void> {
  const base = path.basename(file);
  expect(dirNames).not.toContain(base);
  const moved = dirNames.filter((n) => n.startsWith(`${base}.corrupt-`));
  expect(moved, `${file} quarantined`).toHaveLength(1);
  expect(moved[0]).toMatch(/\.corrupt-\d{8}T\d{6}Z$/);
  expect(await readFile(path.join(path.dirname(file), moved[0]!))).toEqual(content);
  const warnings = outputLines(agent, new RegExp(`state file ${escape(file)} is corrupt \\(`));
  expect(warnings, `warnings naming ${file}`).toHaveLength(1);
  expect(warnings[0]).toMatch(/ WARN /);
  expect(warnings[0]).toContain(`moved it to ${path.join(path.dirname(file), moved[0]!)} and went on without it`);
  if (content.length === 0) expect(warnings[0]).toContain('(the file is empty)');
}

// An empty record file is a creation a crash cut short (createFileDurable): removed with an info line; any other length is quarantined.
async function expectSetAside(agent: AgentProcess, file: string, content: Buffer, dirNames: readonly string[]): Promise<void> {
  if (content.length > 0) return expectQuarantined(agent, file, content, dirNames);
  const base = path.basename(file);
  expect(dirNames.filter((n) => n.startsWith(base)), `${file} removed`).toEqual([]);
  const lines = outputLines(agent, new RegExp(`removed the empty state file ${escape(file)}: a record whose writing a crash or power cut interrupted`));
  expect(lines, `lines naming ${file}`).toHaveLength(1);
  expect(lines[0]).toMatch(/ INFO /);
}

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

// Starts an agent on `dirs`, queues a job and checks it runs normally; returns the agent (stopped).
async function startAndRunNextJob(dirs: AgentDirs, label: string): Promise<AgentProcess> {
  const next = cloud.queueJob(device.uuid, { name: `next job ${label}`, document: commandJob(['/bin/echo', 'next']) });
  const agent = startAgent(dirs);
  agents.push(agent);
  await cloud.waitForJobStatus(next.job_id, 'SUCCEEDED', 30_000);
  const final = expectOneFinalLast(cloud, next.job_id);
  expect(final).toMatchObject({ status: 'SUCCEEDED', exit_code: 0, executed_steps: 1, reason: '1 of 1 steps succeeded' });
  expect(await stopAgent(agent)).toEqual({ code: 0, signal: null });
  return agent;
}

describe('a truncated state file', () => {
  for (const kind of ['journal', 'outbox', 'history'] as const) {
    it(`${kind}: every length from 1 to the full size is quarantined with one warning naming it (0: removed as an interrupted creation), and the next job runs`, async () => {
      const file = real.get(kind)!;
      const dirs = await createAgentDirs(cloud, device);
      cleanups.push(dirs);
      const dir = path.join(dirs.stateDir, kind);
      await mkdir(dir, { recursive: true, mode: 0o700 });
      const full = file.bytes.length;
      const copies: { file: string; content: Buffer }[] = [];
      for (let length = 0; length < full; length += 1) {
        const target = path.join(dir, copyName(kind, length));
        const content = file.bytes.subarray(0, length);
        await writeFile(target, content, { mode: 0o600 });
        copies.push({ file: target, content });
      }
      // the full length, under its own name, is valid and used (a journal entry with its step log)
      await writeFile(path.join(dir, file.name), file.bytes, { mode: 0o600 });
      if (kind === 'journal') await writeFile(path.join(dir, journalStepLog.name), journalStepLog.bytes, { mode: 0o600 });

      const started = Date.now();
      const agent = await startAndRunNextJob(dirs, `after ${kind} x${full}`);
      const took = Date.now() - started;
      const names = await readdir(dir);
      for (const copy of copies) await expectSetAside(agent, copy.file, copy.content, names);
      expect(outputLines(agent, / is corrupt \(/)).toHaveLength(full - 1);
      console.log(`${kind}: ${full} truncated copies (lengths 0..${full - 1}) set aside in one start of ${took} ms`);

      // the intact file did its part
      if (kind === 'history') {
        // intact, so kept where it was
        expect(names).toContain(file.name);
      } else if (kind === 'journal') {
        // recovered: the interrupted job is reported
        expect(names).not.toContain(file.name);
        const final = expectOneFinalLast(cloud, interruptedJobId);
        expect(final.status).toBe('FAILED');
        // made by an agent with another runtime_dir (boot marker): a boot the entry was not written in
        expect(final.reason).toBe(
          'interrupted: the agent stopped while step 1 of 3 (append 1) was running as far as its journal shows; the device restarted since (power loss or reboot), ' +
            'and steps are not synced to disk one by one, so later steps may have started; the job was not resumed',
        );
      } else {
        // delivered: the finished job's final report
        expect(names).not.toContain(file.name);
        const stored = JSON.parse(file.bytes.toString('utf8')) as { report: unknown };
        expect(cloud.patches(undeliveredJobId).at(-1)!.body).toEqual(stored.report);
      }
    });
  }

  it('alone under its own name, at a sample of lengths: one start each, one warning (none when empty), the next job runs', async () => {
    const timings: string[] = [];
    for (const kind of ['journal', 'outbox', 'history'] as const) {
      const file = real.get(kind)!;
      const full = file.bytes.length;
      const lengths = [...new Set([0, 1, Math.floor(full / 3), Math.floor((2 * full) / 3), full - 1])];
      for (const length of lengths) {
        const dirs = await createAgentDirs(cloud, device);
        cleanups.push(dirs);
        const dir = path.join(dirs.stateDir, kind);
        await mkdir(dir, { recursive: true, mode: 0o700 });
        const target = path.join(dir, file.name);
        const content = file.bytes.subarray(0, length);
        await writeFile(target, content, { mode: 0o600 });
        const started = Date.now();
        const agent = await startAndRunNextJob(dirs, `${kind} ${length}/${full}`);
        timings.push(`${kind} ${length}/${full}: ${Date.now() - started} ms`);
        await expectSetAside(agent, target, content, await readdir(dir));
        expect(outputLines(agent, / WARN /).filter((l) => / is corrupt /.test(l))).toHaveLength(length === 0 ? 0 : 1);
        await removeDirs(dirs);
      }
    }
    console.log(`one agent start per truncated file (start, quarantine, one job, SIGTERM): ${timings.join('; ')}`);
  });
});
