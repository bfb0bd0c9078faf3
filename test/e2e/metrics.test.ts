// Prometheus metrics of the built executable (issue 23): /metrics scraped
// during a job and checked by promtool, the textfile read by a real
// prometheus-node-exporter, and the textfile left alone while the agent idles.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { findFreePort } from '../cloud/mosquitto.js';
import type { ReferenceCloud } from '../cloud/reference-cloud.js';
import { commandJob, waitFor } from './harness.js';
import { createScope, expectCleanStop } from './polling-helpers.js';

const PROMTOOL = '/usr/bin/promtool';
const NODE_EXPORTER = '/usr/bin/prometheus-node-exporter';

const scope = createScope();
const children: ChildProcess[] = [];
const made: string[] = [];
afterEach(async () => {
  for (const child of children.splice(0)) child.kill('SIGKILL');
  await scope.cleanup();
  await Promise.all(made.splice(0).map((dir) => rm(dir, { recursive: true, force: true })));
});

const polls = (cloud: ReferenceCloud): number => cloud.requests().filter((r) => r.method === 'GET' && /\/jobs\/next$/.test(r.path)).length;

async function scrape(url: string): Promise<{ status: number; type: string; text: string }> {
  const response = await fetch(url);
  return { status: response.status, type: response.headers.get('content-type') ?? '', text: await response.text() };
}

function promtoolCheck(text: string): { code: number | null; output: string } {
  const result = spawnSync(PROMTOOL, ['check', 'metrics'], { input: text, encoding: 'utf8' });
  return { code: result.status, output: `${result.stdout}${result.stderr}` };
}

// node_exporter with only the textfile collector, on a loopback port of its own.
async function startNodeExporter(dir: string): Promise<string> {
  const port = await findFreePort();
  const child = spawn(NODE_EXPORTER, [`--web.listen-address=127.0.0.1:${port}`, '--collector.disable-defaults', '--collector.textfile', `--collector.textfile.directory=${dir}`], {
    stdio: 'ignore',
  });
  children.push(child);
  const url = `http://127.0.0.1:${port}/metrics`;
  await waitFor(async () => (await scrape(url).catch(() => null))?.status === 200, 15_000, 'node_exporter listening');
  return url;
}

describe('metrics', () => {
  it('/metrics during a job passes promtool; node_exporter reads the textfile; an idle agent does not rewrite it', async () => {
    const { cloud, device } = await scope.cloud();
    const port = await findFreePort();
    const textDir = await mkdtemp(path.join(os.tmpdir(), 'cloudjobs-textfile-'));
    made.push(textDir);
    const textfile = path.join(textDir, 'cloudjobs.prom');
    const dirs = await scope.dirs(cloud, device, { metrics: { listen: `127.0.0.1:${port}`, textfile }, jobs: { hold_dir: '' } });
    const agent = scope.agent(dirs);
    await agent.waitForOutput(new RegExp(`INFO serving metrics at http://127\\.0\\.0\\.1:${port}/metrics`));
    const url = `http://127.0.0.1:${port}/metrics`;

    const job = cloud.queueJob(device.uuid, { name: 'scraped', document: commandJob(['sleep', '2']) });
    // the cloud marks the job IN_PROGRESS when it hands it out; the agent runs it a moment later
    let during = await scrape(url);
    await waitFor(async () => (during = await scrape(url)).text.includes('\ncloudjobs_job_running 1\n'), 15_000, 'a scrape while the job runs');
    expect(during.status).toBe(200);
    expect(during.type).toBe('text/plain; version=0.0.4; charset=utf-8');
    expect(during.text).toMatch(/\ncloudjobs_polls_total\{outcome="job"\} 1\n/);
    expect(during.text).toMatch(/\ncloudjobs_info\{version="[^"]+",runtime="node v[^"]+"\} 1\n/);
    const lint = promtoolCheck(during.text);
    expect(lint, lint.output).toEqual({ code: 0, output: '' });

    await cloud.waitForJobStatus(job.job_id, 'SUCCEEDED', 15_000);
    // the report may reach the cloud a moment before the agent has filed the job in its history
    let after = await scrape(url);
    await waitFor(async () => (after = await scrape(url)).text.includes('\ncloudjobs_jobs_total{status="succeeded"} 1\n'), 15_000, 'the job counted');
    expect(after.text).toContain('\ncloudjobs_job_duration_seconds_count 1\n');
    expect(after.text).toMatch(/\ncloudjobs_job_duration_seconds_bucket\{le="1"\} 0\ncloudjobs_job_duration_seconds_bucket\{le="5"\} 1\n/);
    expect(promtoolCheck(after.text).code).toBe(0);
    expect((await scrape(`http://127.0.0.1:${port}/other`)).status).toBe(404);
    expect((await fetch(url, { method: 'POST' })).status).toBe(405);

    await waitFor(async () => (await readFile(textfile, 'utf8').catch(() => '')).includes('cloudjobs_jobs_total{status="succeeded"} 1'), 15_000, 'the textfile after the job');
    expect(promtoolCheck(await readFile(textfile, 'utf8')).code).toBe(0);
    const exporter = await startNodeExporter(textDir);
    const exported = (await scrape(exporter)).text;
    expect(exported).toContain('\ncloudjobs_jobs_total{status="succeeded"} 1\n');
    expect(exported).toContain('\ncloudjobs_held 0\n');
    expect(exported).toContain('\nnode_textfile_scrape_error 0\n');

    // idle: polls go on, the file stays the same file with the same time
    await waitFor(async () => (await scrape(url)).text.includes('\ncloudjobs_outbox_reports 0\n'), 15_000, 'the outbox drained');
    await new Promise((r) => setTimeout(r, 500));
    const before = await stat(textfile);
    const start = polls(cloud);
    await cloud.waitFor((c) => polls(c) >= start + 8, 15_000, 'eight idle polls');
    const idle = await stat(textfile);
    expect({ ino: idle.ino, mtimeMs: idle.mtimeMs }).toEqual({ ino: before.ino, mtimeMs: before.mtimeMs });
    const noJob = Number(/\ncloudjobs_polls_total\{outcome="no_job"\} (\d+)\n/.exec((await scrape(url)).text)?.[1]);
    expect(noJob).toBeGreaterThanOrEqual(8);
    await expectCleanStop(agent);
  });
});
