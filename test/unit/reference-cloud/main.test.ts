import { spawnSync } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { build } from 'esbuild';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnReferenceCloud } from '../../cloud/admin-client.js';
import { send } from './http-client.js';

const UUID = 'dddddddd-0000-4000-8000-000000000001';
const KEY = 'm'.repeat(64);
let dir: string;
let bundle: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'reference-cloud-main-'));
  bundle = join(dir, 'reference-cloud.cjs');
  // The same command the Makefile runs.
  await build({ entryPoints: ['test/cloud/main.ts'], bundle: true, platform: 'node', format: 'cjs', outfile: bundle, logLevel: 'silent' });
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('reference cloud as a standalone process', () => {
  it('prints its URLs, serves devices and the admin API, writes the state file and stops on SIGTERM', async () => {
    const stateFile = join(dir, 'state.json');
    const cloud = await spawnReferenceCloud(bundle, [
      '--port', '0', '--generation', 'agents', '--device', `${UUID}:${KEY}`, '--provisioning-key', 'pk', '--state-file', stateFile,
    ]);
    try {
      expect(cloud.url).toBe(`http://127.0.0.1:${cloud.port}/api/v1`);
      expect(cloud.adminUrl).toBe(`http://127.0.0.1:${cloud.port}/admin`);
      expect(await cloud.admin.health()).toEqual({ ok: true, generation: 'agents', url: cloud.url });
      const job = await cloud.admin.queueJob(UUID, { name: 'Standalone', document: { version: '1.0', steps: [] } });
      const offer = await send(`${cloud.url}/agents/${UUID}/jobs/next`, { headers: { 'X-Device-API-Key': KEY } });
      expect(offer.json()).toMatchObject({ job_id: job.job_id, job_name: 'Standalone', timeout_seconds: 3600 });
      await send(`${cloud.url}/agents/${UUID}/jobs/${job.job_id}/status`, {
        method: 'PATCH',
        headers: { 'X-Device-API-Key': KEY },
        json: { status: 'SUCCEEDED', exit_code: 0 },
      });
      expect((await cloud.admin.patches()).map((p) => p.body)).toEqual([{ status: 'SUCCEEDED', exit_code: 0 }]);
      expect(await cloud.admin.counts()).toEqual({ 'GET /agents/:uuid/jobs/next': 1, 'PATCH /agents/:uuid/jobs/:jobId/status': 1 });
    } finally {
      expect(await cloud.stop()).toBe(0);
    }
    const state = JSON.parse(await readFile(stateFile, 'utf8')) as { jobs: { status: string }[]; patches: unknown[]; devices: { uuid: string }[] };
    expect(state.jobs.map((j) => j.status)).toEqual(['SUCCEEDED']);
    expect(state.patches).toHaveLength(1);
    expect(state.devices.map((d) => d.uuid)).toEqual([UUID]);
    expect(await readFile(stateFile, 'utf8')).not.toContain(KEY);
  });

  it('exits 2 with a message naming a bad argument', () => {
    const result = spawnSync(process.execPath, [bundle, '--generation', 'v3'], { encoding: 'utf8' });
    expect(result.status).toBe(2);
    expect(result.stderr).toBe('reference-cloud: --generation must be devices or agents, got v3\n');
    expect(result.stdout).toBe('');
  });
});
