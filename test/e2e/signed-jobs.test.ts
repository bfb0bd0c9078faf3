// Signed job documents end to end (issue 22): documents signed by `cloudjobs
// sign` with the OpenSSL-made fixture key, stored by the reference cloud as
// PostgreSQL JSONB stores them (members reordered; as a string, jsonb::text),
// run or REJECTED by the built agent with every verdict's reason. Then exec
// and verify on a device that does not require signatures, and the start
// refused for an unsafe key file.
import { readFileSync } from 'node:fs';
import { chmod, copyFile, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ReferenceCloud } from '../cloud/reference-cloud.js';
import { HANDLER_FIXTURES_DIR } from '../fixtures/jobs/load-job-fixture.js';
import { commandJob, runCommand, type AgentDirs, type AgentProcess, type TestDevice } from './harness.js';
import { createScope, expectCleanStop } from './polling-helpers.js';

const isRoot = process.getuid?.() === 0;
const FIXTURES = path.resolve('test/fixtures/signing');
const PRIVATE_KEY = path.join(FIXTURES, 'test-key.private.pem');
// a root-owned copy under /run when the clone lies below /tmp (the handler checks refuse it there)
const HANDLERS = HANDLER_FIXTURES_DIR;
const vectors = JSON.parse(readFileSync(path.join(FIXTURES, 'vectors.json'), 'utf8')) as { keyId: string };

let work: string;
let keysDir: string;

// `cloudjobs sign` with the fixture key; returns the signed document.
async function sign(document: unknown, ...options: string[]): Promise<Record<string, unknown>> {
  const file = await writeDoc(document);
  const result = await runCommand(['sign', '--key', PRIVATE_KEY, ...options, file]);
  expect(result, result.stderr).toMatchObject({ code: 0, stderr: '' });
  return JSON.parse(result.stdout) as Record<string, unknown>;
}

async function makeKeysDir(): Promise<string> {
  const dir = path.join(work, 'trusted-keys.d');
  await mkdir(dir, { mode: 0o755 });
  await chmod(dir, 0o755);
  await copyFile(path.join(FIXTURES, 'test-key.pem'), path.join(dir, 'fleet.pem'));
  await chmod(path.join(dir, 'fleet.pem'), 0o644);
  return dir;
}

beforeAll(async () => {
  work = await mkdtemp(path.join(os.tmpdir(), 'cloudjobs-signed-'));
  await chmod(work, 0o755);
  keysDir = await makeKeysDir();
});
afterAll(() => rm(work, { recursive: true, force: true }));

describe.runIf(isRoot)('an agent that requires signed jobs', () => {
  const scope = createScope();
  let cloud: ReferenceCloud;
  let device: TestDevice;
  let agent: AgentProcess;
  let dirs: AgentDirs;

  beforeAll(async () => {
    ({ cloud, device } = await scope.cloud({ generation: 'devices' }));
    dirs = await scope.dirs(cloud, device, {
      security: { trusted_keys_dir: keysDir, require_signed_jobs: 'true' },
      jobs: { handler_dirs: HANDLERS },
    });
    agent = scope.agent(dirs);
    await agent.waitForOutput(/no pending job; polling again in/);
  });

  afterAll(async () => {
    try {
      await expectCleanStop(agent);
    } finally {
      await scope.cleanup();
    }
  });

  async function runJob(document: unknown, status: string, options: { asString?: boolean; name?: string } = {}) {
    const job = cloud.queueJob(device.uuid, { name: options.name ?? 'signed', document, jsonb: true, documentAsString: options.asString ?? false });
    await cloud.waitForJobStatus(job.job_id, undefined, 30_000);
    await agent.waitForOutput(new RegExp(`final report ${status} delivered jobId=${job.job_id}`), 15_000);
    const row = cloud.getJob(job.job_id);
    expect(row?.status).toBe(status);
    return { jobId: job.job_id, reason: row?.reason ?? '', stdout: row?.stdout ?? '', stored: row?.job_document };
  }

  it('logs the policy at start and shows it in status', async () => {
    expect(agent.output()).toContain(`job signatures: required; trusted keys ${vectors.keyId}`);
    const status = await runCommand(['--config', dirs.configFile, 'status']);
    expect(status.stdout).toContain(`signatures:     required; trusted keys ${vectors.keyId}\n`);
  });

  it('runs a signed document the server stored as JSONB, handed out as an object and as jsonb::text', async () => {
    const signed = await sign(commandJob(['echo', 'signed ok']), '--expires', '1h', '--device', device.uuid);
    for (const asString of [false, true]) {
      const { stdout, stored } = await runJob(signed, 'SUCCEEDED', { asString });
      expect(stdout).toBe('=== Step: step 1 ===\nsigned ok\n');
      // the cloud really reordered: shorter names first, "signature" before "includeStdOut"
      expect(Object.keys(stored as object)).toEqual(['steps', 'devices', 'expires', 'version', 'signature', 'includeStdOut']);
    }
    expect(agent.output()).toMatch(new RegExp(`job signed: signature verified with key ${vectors.keyId} \\(expires .*, for 1 device\\(s\\)\\)`));
  });

  it('runs both document shapes signed: an Iotistic template step and the old operation schema (a handler)', async () => {
    const template = await sign({ version: '1.0', includeStdOut: true, steps: [{ name: 'Template', type: 'runCommand', input: { command: 'echo template' } }] });
    expect((await runJob(template, 'SUCCEEDED')).stdout).toBe('=== Step: Template ===\ntemplate\n');
    const old = await sign({ operation: 'echo', args: ['from', 'a', 'handler'], includeStdOut: true });
    expect((await runJob(old, 'SUCCEEDED')).stdout).toBe('=== Step: echo ===\nfrom a handler\n');
  });

  it('REJECTS an unsigned document and leaves nothing but the report and the history entry', async () => {
    const marker = path.join(work, 'unsigned-ran');
    const { jobId, reason } = await runJob(commandJob(['touch', marker]), 'REJECTED', { name: 'unsigned' });
    expect(reason).toBe('job document rejected: unsigned: this agent runs only signed job documents (security.require_signed_jobs) and this one has no signature member');
    const patches = cloud.patches(jobId);
    expect(patches.map((p) => (p.body as { status: string }).status)).toEqual(['REJECTED']);
    await expect(readFile(marker)).rejects.toThrow(/ENOENT/);
    // no work dir, no journal entry or step log, no nonce; history holds it
    expect(await readdir(dirs.workDir).catch(() => [])).toEqual([]);
    expect(await readdir(path.join(dirs.stateDir, 'journal'))).toEqual([]);
    const history = await runCommand(['--config', dirs.configFile, 'history', '--json', '--limit', '1']);
    expect(JSON.parse(history.stdout)).toMatchObject([{ jobId, report: { status: 'REJECTED', reason } }]);
  });

  it('REJECTS each other failure with a reason naming it', async () => {
    const ok = commandJob(['true']);
    const signed = await sign(ok);
    const keygen = await runCommand(['keygen', '--out', path.join(work, 'other')]);
    const otherId = /key id: +([0-9a-f]{16})/.exec(keygen.stdout)?.[1] ?? '';
    const byOther = await runCommand(['sign', '--key', path.join(work, 'other', `${otherId}.private.pem`), await writeDoc(ok)]);
    const cases: [string, unknown, RegExp][] = [
      ['unknown key', JSON.parse(byOther.stdout), new RegExp(`^job document rejected: unknown key id ${otherId}: no key in ${keysDir} has it$`)],
      ['tampered', { ...signed, steps: commandJob(['false']).steps }, new RegExp(`^job document rejected: signature does not verify with key ${vectors.keyId}: the document was changed after it was signed`)],
      ['expired', await sign(ok, '--expires', '2020-01-01T00:00:00Z'), /^job document rejected: expired at 2020-01-01T00:00:00Z \(this device's clock says 20\d\d-/],
      ['other device', await sign(ok, '--device', 'another-device'), new RegExp(`^job document rejected: not for this device: it lists 1 device\\(s\\), not ${device.uuid}$`)],
      ['malformed', { ...signed, signature: { alg: 'Ed25519', keyId: vectors.keyId } }, /^job document rejected: malformed signature member: signature.value must be the 64-byte signature/],
    ];
    for (const [name, document, reason] of cases) {
      expect((await runJob(document, 'REJECTED', { name })).reason, name).toMatch(reason);
    }
  });

  it('runs a document with a nonce once; a second job with the same document is REJECTED', async () => {
    const once = await sign(commandJob(['true']), '--expires', '1h', '--nonce');
    const first = await runJob(once, 'SUCCEEDED');
    const second = await runJob(once, 'REJECTED', { asString: true });
    expect(second.reason).toMatch(new RegExp(`^job document rejected: nonce already used by job ${first.jobId} at .*; refused until the document expires at `));
    const stored = JSON.parse(await readFile(path.join(dirs.stateDir, 'nonces.json'), 'utf8')) as { nonces: { nonce: string; jobId: string }[] };
    expect(stored.nonces).toEqual([expect.objectContaining({ nonce: once.nonce, jobId: first.jobId })]);
  });
});

async function writeDoc(document: unknown): Promise<string> {
  const file = path.join(work, `doc-${Math.random().toString(36).slice(2)}.json`);
  await writeFile(file, JSON.stringify(document));
  return file;
}

describe.runIf(isRoot)('exec, verify and the start on a device that does not require signatures', () => {
  let config: string;
  beforeAll(async () => {
    config = path.join(work, 'optional.ini');
    const state = path.join(work, 'optional-state');
    await mkdir(state, { mode: 0o700 });
    await writeFile(config, `[device]\nuuid = dev-1\nsupervisor_url =\n[agent]\nstate_dir = ${state}\n[jobs]\nrun_as_user = nobody\nwork_dir = ${path.join(work, 'w')}\n[security]\ntrusted_keys_dir = ${keysDir}\n`);
  });

  it('exec runs an unsigned document, checks a signed one anyway, and uses up a nonce', async () => {
    const unsigned = await writeDoc(commandJob(['echo', 'plain']));
    expect(await runCommand(['--config', config, 'exec', unsigned])).toMatchObject({ code: 0 });
    const signed = await sign(commandJob(['echo', 'x']));
    const tampered = await writeDoc({ ...signed, includeStdOut: false });
    const refused = await runCommand(['--config', config, 'exec', tampered]);
    expect(refused.code).toBe(1);
    expect(refused.stdout).toMatch(/^REJECTED: job document rejected: signature does not verify with key /m);
    const once = await writeDoc(await sign(commandJob(['true']), '--expires', '1h', '--nonce', '--device', 'dev-1'));
    expect((await runCommand(['--config', config, 'verify', once])).code).toBe(0);
    expect((await runCommand(['--config', config, 'exec', once])).code).toBe(0);
    const again = await runCommand(['--config', config, 'verify', once]);
    expect(again.code).toBe(1);
    expect(again.stdout).toMatch(/^verdict: +REFUSED: nonce already used by job local-/m);
  });

  it('verify prints key id, claims and verdict; exit 0 only when it would run', async () => {
    const signed = await writeDoc(await sign(commandJob(['true']), '--expires', '2099-01-01T00:00:00Z', '--device', 'dev-1', '--device', 'dev-2'));
    const result = await runCommand(['--config', config, 'verify', signed]);
    expect(result).toMatchObject({ code: 0, stderr: '' });
    expect(result.stdout).toBe(
      `key id:     ${vectors.keyId} (trusted: ${keysDir}/fleet.pem)\nexpires:    2099-01-01T00:00:00Z\ndevices:    dev-1, dev-2\nnonce:      none (the document may run more than once)\nverdict:    would run on this device\n`,
    );
    const elsewhere = await writeDoc(await sign(commandJob(['true']), '--device', 'dev-9'));
    expect(await runCommand(['--config', config, 'verify', elsewhere])).toMatchObject({ code: 1, stdout: expect.stringContaining('verdict:    REFUSED: not for this device: it lists 1 device(s), not dev-1\n') });
  });

  it('sign refuses what it cannot sign honestly', async () => {
    const doc = await writeDoc(commandJob(['true']));
    expect(await runCommand(['sign', '--key', PRIVATE_KEY, '--nonce', doc])).toMatchObject({
      code: 2,
      stderr: 'cloudjobs: --nonce needs --expires (or an expires member): a device remembers a nonce until the document expires\n',
    });
    expect(await runCommand(['sign', '--key', PRIVATE_KEY, '--expires', 'soon', doc])).toMatchObject({ code: 2, stderr: expect.stringContaining('--expires must be a duration from now (7d, 12h) or an RFC 3339 time') });
    const offer = await writeDoc({ job_id: 'j', job_document: commandJob(['true']) });
    expect(await runCommand(['sign', '--key', PRIVATE_KEY, offer])).toMatchObject({ code: 1, stderr: expect.stringContaining('is a whole job offer; sign its job_document alone') });
    expect(await runCommand(['sign', '--key', path.join(FIXTURES, 'test-key.pem'), doc])).toMatchObject({ code: 1, stderr: expect.stringContaining('is not a PEM private key') });
  });

  it('refuses to start (exit 78) with a key file writable by others, naming it', async () => {
    const dir = path.join(work, 'unsafe-keys');
    await mkdir(dir, { mode: 0o755 });
    await chmod(dir, 0o755);
    const file = path.join(dir, 'fleet.pem');
    await copyFile(path.join(FIXTURES, 'test-key.pem'), file);
    await chmod(file, 0o666);
    const unsafe = path.join(work, 'unsafe.ini');
    await writeFile(unsafe, `${await readFile(config, 'utf8')}trusted_keys_dir = ${dir}\n`.replace(`trusted_keys_dir = ${keysDir}\n`, ''));
    const run = await runCommand(['--config', unsafe, 'run'], { env: { CLOUDJOBS_CLOUD_API_URL: 'http://127.0.0.1:9' } });
    expect(run.code).toBe(78);
    expect(run.stderr).toContain(`security.trusted_keys_dir (${file}): expected a root-owned public key file not writable by group or others, got mode 0666, writable by group and others`);
  });
});
