// Issue 6 "Done when" (secrets): during a full job run at debug level the
// device API key and the provisioning key appear in no output of the agent:
// its log, check-config, status, history, the runtime status file, the PATCH
// bodies, process titles, the command lines and environments of job steps,
// and the files under state_dir (only identity.json holds the key, 0600).
// A config file holding api_key that others can read is warned about by name.
import { randomBytes, randomUUID } from 'node:crypto';
import { chmod, readFile, writeFile } from 'node:fs/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { startReferenceCloud, type ReferenceCloud } from '../cloud/reference-cloud.js';
import { createAgentDirs, removeDirs, renderIni, runCommand, startAgent, stopAgent, waitFor, type AgentDirs, type AgentProcess } from './harness.js';
import {
  createUnregisteredDirs,
  findLeaks,
  listFilesBelow,
  modeOf,
  readIdentityFile,
  readProcessTree,
  type ProcessView,
} from './identity-helpers.js';

const PROVISIONING_KEY = `prov-${randomBytes(24).toString('hex')}`;

const clouds: ReferenceCloud[] = [];
const agents: AgentProcess[] = [];
const allDirs: AgentDirs[] = [];

afterEach(async () => {
  for (const agent of agents.splice(0)) await stopAgent(agent);
  for (const cloud of clouds.splice(0)) await cloud.close();
  for (const dirs of allDirs.splice(0)) await removeDirs(dirs);
});

type Source = { label: string; text: string };

// A job whose steps show their own environment and command line, then stay alive long enough to be inspected.
function revealingJob(): Record<string, unknown> {
  return {
    version: '1.0',
    includeStdOut: true,
    steps: [
      { action: { name: 'print env', type: 'runCommand', input: { command: ['env'] } } },
      {
        action: {
          name: 'print own proc',
          type: 'runCommand',
          input: { command: ['sh', '-c', 'tr "\\000" "\\n" < /proc/$$/environ; tr "\\000" " " < /proc/$$/cmdline; echo; cat /proc/$$/comm'] },
        },
      },
      { action: { name: 'linger', type: 'runCommand', input: { command: ['sleep', '3'] } } },
    ],
  };
}

// Resolves with the agent's process tree once the job's `sleep 3` step runs under it.
function waitForStep(agentPid: number): Promise<ProcessView[]> {
  return waitFor(
    async () => {
      const tree = await readProcessTree(agentPid);
      return tree.some((v) => v.comm === 'sleep') ? tree : null;
    },
    30_000,
    'the job step `sleep 3` to be running under the agent',
    50,
  );
}

function processSources(views: readonly ProcessView[], what: string): Source[] {
  return views.flatMap((v) => [
    { label: `${what} ${v.pid} (${v.comm}) comm`, text: v.comm },
    { label: `${what} ${v.pid} (${v.comm}) cmdline`, text: v.cmdline },
    { label: `${what} ${v.pid} (${v.comm}) environ`, text: v.environ },
  ]);
}

async function fileSources(files: readonly string[]): Promise<Source[]> {
  return Promise.all(files.map(async (file) => ({ label: `file ${file}`, text: (await readFile(file)).toString('latin1') })));
}

async function commandSources(dirs: AgentDirs, args: string[], env: Record<string, string> = {}): Promise<Source> {
  const result = await runCommand(['--config', dirs.configFile, ...args], { env });
  return { label: `cloudjobs ${args.join(' ')} (exit ${result.code})`, text: `${result.stdout}\n${result.stderr}` };
}

describe('secrets stay secret', () => {
  it('a self-registering agent at debug level leaks neither the provisioning key nor its API key through any output', async () => {
    const cloud = await startReferenceCloud({ generation: 'agents', provisioningKeys: [{ key: PROVISIONING_KEY }] });
    clouds.push(cloud);
    const dirs = await createUnregisteredDirs(cloud, PROVISIONING_KEY, { viaConfig: true });
    allDirs.push(dirs);
    const config = await readFile(dirs.configFile, 'utf8');
    expect(config).toMatch(/^level = debug$/m);

    const agent = startAgent(dirs);
    agents.push(agent);
    await agent.waitForOutput(/registered as \S+ \(generation agents\); identity stored in/);
    const identity = await readIdentityFile(dirs.identityFile);
    const apiKey = identity.apiKey;
    expect(apiKey).toMatch(/^[0-9a-f]{64}$/);
    // identity.json is the one place that holds the key, readable by root only.
    expect(await modeOf(dirs.identityFile)).toBe(0o600);
    expect(await modeOf(dirs.stateDir)).toBe(0o700);

    const job = cloud.queueJob(identity.uuid, { name: 'reveal', document: revealingJob() });
    const agentPid = agent.child.pid!;
    // While the last step runs: the process tree, status, the runtime file and the state files mid-job (journal).
    const tree = await waitForStep(agentPid);
    const steps = tree.filter((v) => v.pid !== agentPid);
    expect(steps.map((v) => v.comm)).toContain('sleep');
    const midJob: Source[] = [
      ...processSources(tree, 'process'),
      await commandSources(dirs, ['status']),
      await commandSources(dirs, ['status', '--json']),
      ...(await fileSources(await listFilesBelow(dirs.runtimeDir))),
      ...(await fileSources((await listFilesBelow(dirs.stateDir)).filter((f) => f !== dirs.identityFile))),
    ];
    // The steps ran as the restricted user with a clean environment.
    const sleeper = steps.find((v) => v.comm === 'sleep')!;
    expect(sleeper.environ).toContain('CLOUDJOBS_JOB_ID=');
    expect(sleeper.environ).toMatch(/^USER=nobody$/m);
    const statusJson = JSON.parse(midJob.find((s) => s.label.startsWith('cloudjobs status --json'))!.text.split('\n\n')[0]!) as unknown;
    expect(JSON.stringify(statusJson)).toContain(job.job_id);

    const row = await cloud.waitForJobStatus(job.job_id, undefined, 30_000);
    expect(row.status).toBe('SUCCEEDED');
    const finals = cloud.patches(job.job_id).filter((p) => (p.body as { status: string }).status !== 'IN_PROGRESS');
    expect(finals).toHaveLength(1);
    const final = finals[0]!.body as { stdout: string; executed_steps: number };
    expect(final.executed_steps).toBe(3);
    // The steps really printed their environment and command line (else the grep below proves nothing).
    expect(final.stdout).toContain(`CLOUDJOBS_JOB_ID=${job.job_id}`);
    expect(final.stdout).toMatch(/^\S*sh -c tr "\\000" "\\n" < \/proc\/\$\$\/environ/m);

    const after: Source[] = [
      ...cloud.patches().map((p) => ({ label: `PATCH #${p.seq} ${p.path}`, text: p.rawBody })),
      await commandSources(dirs, ['history', '--json']),
      await commandSources(dirs, ['history']),
      await commandSources(dirs, ['status']),
      await commandSources(dirs, ['status', '--json']),
      await commandSources(dirs, ['check-config']),
      await commandSources(dirs, ['register']),
      ...(await fileSources(await listFilesBelow(dirs.runtimeDir))),
      ...(await fileSources((await listFilesBelow(dirs.stateDir)).filter((f) => f !== dirs.identityFile))),
      ...(await fileSources(await listFilesBelow(dirs.workDir))),
    ];
    const historyJson = after.find((s) => s.label.startsWith('cloudjobs history --json'))!;
    expect(historyJson.text).toContain(job.job_id);
    const checkConfig = after.find((s) => s.label.startsWith('cloudjobs check-config'))!;
    expect(checkConfig.label).toContain('exit 0');
    expect(checkConfig.text).toContain(`uuid and API key from the registered identity ${dirs.identityFile}`);

    expect((await stopAgent(agent)).code).toBe(0);
    const everything: Source[] = [{ label: 'agent stdout/stderr', text: agent.output() }, ...midJob, ...after];
    // Sanity: the sources are the real thing (the log is at debug level and saw the job).
    expect(agent.output()).toMatch(/ DEBUG /);
    expect(agent.output()).toContain(job.job_id);
    expect(everything.length).toBeGreaterThan(12);

    expect(findLeaks(apiKey, everything)).toEqual([]);
    expect(findLeaks(PROVISIONING_KEY, everything)).toEqual([]);
    // The identity file holds the key (and nothing else on disk does but the provisioning key file we wrote).
    expect(await readFile(dirs.identityFile, 'utf8')).toContain(apiKey);
  });

  it('an API key given in the environment reaches neither the job steps nor any report or check-config output', async () => {
    const uuid = randomUUID();
    const apiKey = randomBytes(32).toString('hex');
    const cloud = await startReferenceCloud({ devices: [{ uuid, apiKey }] });
    clouds.push(cloud);
    const dirs = await createAgentDirs(cloud, null);
    allDirs.push(dirs);
    const env = { DEVICE_UUID: uuid, DEVICE_API_KEY: apiKey };
    const agent = startAgent(dirs, { env });
    agents.push(agent);
    const job = cloud.queueJob(uuid, { name: 'reveal', document: revealingJob() });
    const tree = await waitForStep(agent.child.pid!);
    // The agent itself was given the key in its environment; its steps must not inherit it.
    const stepViews = tree.filter((v) => v.pid !== agent.child.pid);
    expect(stepViews.length).toBeGreaterThan(0);
    const row = await cloud.waitForJobStatus(job.job_id, undefined, 30_000);
    expect(row.status).toBe('SUCCEEDED');
    const sources: Source[] = [
      ...processSources(stepViews, 'step'),
      ...cloud.patches().map((p) => ({ label: `PATCH #${p.seq}`, text: p.rawBody })),
      await commandSources(dirs, ['check-config'], env),
      await commandSources(dirs, ['history', '--json'], env),
    ];
    expect((await stopAgent(agent)).code).toBe(0);
    sources.push({ label: 'agent stdout/stderr', text: agent.output() });
    expect(sources.find((s) => s.label.startsWith('cloudjobs check-config'))!.text).toContain('API key from the environment');
    expect((cloud.patches(job.job_id).at(-1)!.body as { stdout: string }).stdout).toContain(`CLOUDJOBS_JOB_ID=${job.job_id}`);
    expect(findLeaks(apiKey, sources)).toEqual([]);
  });
});

describe('process titles', () => {
  it('register --provisioning-key KEY is refused at once, naming the safe ways, without echoing the key or contacting the cloud', async () => {
    const cloud = await startReferenceCloud({ generation: 'devices', provisioningKeys: [{ key: PROVISIONING_KEY }] });
    clouds.push(cloud);
    const dirs = await createAgentDirs(cloud, null, {});
    allDirs.push(dirs);
    for (const argv of [['--provisioning-key', PROVISIONING_KEY], [`--provisioning-key=${PROVISIONING_KEY}`]]) {
      const result = await runCommand(['--config', dirs.configFile, 'register', ...argv]);
      expect(result.code).toBe(2);
      expect(result.stderr).toContain('--provisioning-key is no longer accepted: a key on the command line can be read by every local user');
      expect(result.stderr).toContain('--provisioning-key-file FILE (mode 0600), or on standard input with --provisioning-key-stdin');
      expect(`${result.stdout}${result.stderr}`).not.toContain(PROVISIONING_KEY);
    }
    expect(cloud.requests()).toEqual([]);
  });

  it('register --provisioning-key-stdin shows neither the key nor its source in its process title or /proc/<pid>/cmdline while it works', async () => {
    const cloud = await startReferenceCloud({ generation: 'devices', provisioningKeys: [{ key: PROVISIONING_KEY }] });
    clouds.push(cloud);
    // The registration request hangs, so the process stays alive to be inspected.
    cloud.injectFault({ kind: 'hang', match: '^POST .*/register$', times: 'always' });
    const dirs = await createAgentDirs(cloud, null, {});
    allDirs.push(dirs);
    const register = startAgent(dirs, { args: ['--config', dirs.configFile, 'register', '--provisioning-key-stdin'], input: `${PROVISIONING_KEY}\n` });
    agents.push(register);
    await cloud.waitFor((c) => c.requests().some((r) => r.fault === 'hang'), 20_000, 'the hanging registration request');
    const [view] = (await readProcessTree(register.child.pid!)).filter((v) => v.pid === register.child.pid);
    expect(view).toBeDefined();
    expect(view!.cmdline).toBe('cloudjobs register');
    expect(findLeaks(PROVISIONING_KEY, processSources([view!], 'register'))).toEqual([]);
    register.kill('SIGTERM');
    await register.exited;
    expect(register.output()).not.toContain(PROVISIONING_KEY);
  });
});

describe('config files holding secrets', () => {
  it.each([
    { mode: 0o644, octal: '0644', who: 'group and others' },
    { mode: 0o604, octal: '0604', who: 'others' },
    { mode: 0o640, octal: '0640', who: 'group' },
  ])('api_key in a config file of mode $octal is warned about by file name, and never printed', async ({ mode, octal, who }) => {
    const apiKey = randomBytes(32).toString('hex');
    const dirs = await createAgentDirs(null, null, {});
    allDirs.push(dirs);
    const text = await readFile(dirs.configFile, 'utf8');
    const withKey = text.replace('[cloud]\n', `[cloud]\napi_url = http://127.0.0.1:9/api/v1\napi_key = ${apiKey}\n`);
    expect(withKey).toContain(`api_key = ${apiKey}`);
    await writeFile(dirs.configFile, withKey);
    await chmod(dirs.configFile, mode);
    const result = await runCommand(['--config', dirs.configFile, 'check-config'], { env: { DEVICE_UUID: randomUUID() } });
    const output = `${result.stdout}\n${result.stderr}`;
    expect(output).toContain(`${dirs.configFile} is readable by ${who} (mode ${octal}); it holds secrets: chmod 600 ${dirs.configFile}`);
    expect(output).not.toContain(apiKey);
    expect(result.code).toBe(0);
  });

  it('the same file at mode 0600 gets no warning', async () => {
    const apiKey = randomBytes(32).toString('hex');
    const dirs = await createAgentDirs(null, null, {});
    allDirs.push(dirs);
    const ini = renderIni({ cloud: { api_url: 'http://127.0.0.1:9/api/v1', api_key: apiKey }, device: { uuid: randomUUID(), supervisor_url: '' }, agent: { state_dir: dirs.stateDir, runtime_dir: dirs.runtimeDir } });
    await writeFile(dirs.configFile, ini, { mode: 0o600 });
    await chmod(dirs.configFile, 0o600);
    const result = await runCommand(['--config', dirs.configFile, 'check-config']);
    const output = `${result.stdout}\n${result.stderr}`;
    expect(result.code).toBe(0);
    expect(output).not.toContain('it holds secrets');
    expect(output).not.toContain(apiKey);
  });
});
