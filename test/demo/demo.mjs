// `make demo`: starts the reference cloud and the built agent on this machine,
// queues the Iotistic health-check template and a job in the seed guide's
// example shape, and prints the reports as the cloud received them.
// Works as root (steps run as `nobody`) and as a normal user (steps run as you).
import { spawn } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';

const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), '../..');
const agentBin = path.join(root, 'build/cloudjobs');
const cloudBundle = path.join(root, 'build/reference-cloud.cjs');
const isRoot = process.getuid?.() === 0;
const runUser = isRoot ? 'nobody' : os.userInfo().username;
const uuid = randomUUID();
const apiKey = randomBytes(32).toString('hex');
const dir = mkdtempSync(path.join(os.tmpdir(), 'cloudjobs-demo-'));
chmodSync(dir, 0o755);
const children = [];

function cleanup() {
  for (const child of children) if (child.exitCode === null) child.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
}
process.on('exit', cleanup);
process.on('SIGINT', () => process.exit(130));

function say(text) {
  process.stdout.write(`\n\u001b[1m== ${text}\u001b[0m\n`);
}

// Debian's mosquitto, when installed (the Makefile installs it with the test packages):
// the cloud publishes job notifications through it and the agent takes jobs by push.
async function startBroker() {
  if (!existsSync('/usr/sbin/mosquitto')) return null;
  const port = await new Promise((resolve) => {
    const server = net.createServer().listen(0, '127.0.0.1', () => {
      const { port: free } = server.address();
      server.close(() => resolve(free));
    });
  });
  const conf = path.join(dir, 'mosquitto.conf');
  writeFileSync(conf, [`listener ${port} 127.0.0.1`, 'allow_anonymous true', 'persistence false', ...(isRoot ? ['user root'] : [])].join('\n') + '\n');
  const child = spawn('/usr/sbin/mosquitto', ['-c', conf], { stdio: 'ignore' });
  children.push(child);
  for (let i = 0; i < 100; i += 1) {
    const open = await new Promise((resolve) => {
      const socket = net.connect({ host: '127.0.0.1', port }, () => resolve(socket.destroy() ?? true));
      socket.on('error', () => resolve(false));
    });
    if (open) return `mqtt://127.0.0.1:${port}`;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error('mosquitto did not start');
}

async function startCloud(broker) {
  const mqtt = broker ? ['--mqtt-broker', broker] : [];
  const child = spawn(process.execPath, [cloudBundle, '--port', '0', '--generation', 'devices', '--device', `${uuid}:${apiKey}`, ...mqtt], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  children.push(child);
  const line = await new Promise((resolve, reject) => {
    readline.createInterface({ input: child.stdout }).once('line', resolve);
    child.once('exit', (code) => reject(new Error(`reference cloud exited with ${code}`)));
  });
  return JSON.parse(line);
}

async function admin(base, method, route, body) {
  const res = await fetch(`${base}${route}`, {
    method,
    headers: { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (!res.ok) throw new Error(`admin ${method} ${route}: ${res.status} ${await res.text()}`);
  return res.status === 204 ? null : res.json();
}

const broker = await startBroker();
const cloud = await startCloud(broker);
say(`reference cloud listening at ${cloud.url} (device ${uuid})${broker ? `, publishing job notifications through mosquitto at ${broker}` : ' (no mosquitto installed: polling only)'}`);

// The dashboard fills {{VAR}} placeholders; the health-check template of test/cloud/CONTRACT.md checks ssh.
const healthCheck = JSON.parse(
  readFileSync(path.join(root, 'test/fixtures/jobs/iotistic-health-check.template.json'), 'utf8').replaceAll('{{SERVICE_NAME}}', 'ssh'),
);
const seedShaped = {
  version: '1.0',
  steps: [{ action: { type: 'runCommand', input: { command: 'uname -a' } } }],
  includeStdOut: true,
};
const jobs = [
  await admin(cloud.adminUrl, 'POST', `/devices/${uuid}/jobs`, { name: 'Test Health Check', document: healthCheck.job_document ?? healthCheck, timeout_seconds: 300 }),
  await admin(cloud.adminUrl, 'POST', `/devices/${uuid}/jobs`, { name: 'Seed guide example (uname -a)', document: seedShaped, timeout_seconds: 300 }),
];
say(`queued ${jobs.length} jobs; starting the agent (steps run as ${runUser})`);

writeFileSync(path.join(dir, 'api-key'), `${apiKey}\n`, { mode: 0o600 });
writeFileSync(
  path.join(dir, 'agent.ini'),
  [
    '[cloud]', `api_url = ${cloud.url}`, `api_key_file = ${dir}/api-key`,
    '[device]', `uuid = ${uuid}`, 'supervisor_url = ',
    // with push the safety-net poll runs every 30s, as in production
    '[polling]', `interval = ${broker ? '30s' : '2s'}`,
    ...(broker ? ['[mqtt]', `broker = ${broker}`] : []),
    '[jobs]', `run_as_user = ${runUser}`, `work_dir = ${dir}/work`,
    '[agent]', `state_dir = ${dir}/state`, `runtime_dir = ${dir}/run`,
  ].join('\n'),
  { mode: 0o600 },
);
// the agent's environment without the build's CLOUDJOBS_VERSION (the Makefile
// exports it for the bundle): a CLOUDJOBS_* name the agent does not know is warned about
const { CLOUDJOBS_VERSION: _buildVersion, ...agentEnv } = process.env;
const agent = spawn(agentBin, ['--config', path.join(dir, 'agent.ini'), 'run'], { stdio: ['ignore', 'inherit', 'inherit'], env: agentEnv });
children.push(agent);

const deadline = Date.now() + 60_000;
const final = new Set(['SUCCEEDED', 'FAILED', 'TIMED_OUT', 'REJECTED', 'CANCELED']);
let rows = [];
while (Date.now() < deadline) {
  rows = (await admin(cloud.adminUrl, 'GET', `/jobs?uuid=${uuid}`)).jobs;
  if (rows.every((row) => final.has(row.status))) break;
  await new Promise((r) => setTimeout(r, 250));
}

if (broker && rows.every((row) => final.has(row.status))) {
  // wait for the push channel, then queue a job: it starts long before the next 30s poll
  const agentStatus = () =>
    new Promise((resolve) => {
      const child = spawn(agentBin, ['--config', path.join(dir, 'agent.ini'), 'status', '--json'], { stdio: ['ignore', 'pipe', 'ignore'] });
      let text = '';
      child.stdout.on('data', (chunk) => (text += chunk));
      child.once('exit', () => resolve(text ? JSON.parse(text) : null));
    });
  while (Date.now() < deadline && (await agentStatus())?.push?.state !== 'connected') await new Promise((r) => setTimeout(r, 200));
  const queuedAt = Date.now();
  const pushed = await admin(cloud.adminUrl, 'POST', `/devices/${uuid}/jobs`, { name: 'Dispatched by push (uname -a)', document: seedShaped, timeout_seconds: 300 });
  jobs.push(pushed);
  while (Date.now() < deadline) {
    const row = (await admin(cloud.adminUrl, 'GET', `/jobs?uuid=${uuid}`)).jobs.find((r) => r.job_id === pushed.job_id);
    if (row && final.has(row.status)) break;
    await new Promise((r) => setTimeout(r, 20));
  }
  rows = (await admin(cloud.adminUrl, 'GET', `/jobs?uuid=${uuid}`)).jobs;
  say(`a job queued with the agent idle (next poll up to 30s away) finished ${Date.now() - queuedAt} ms later: it was dispatched by its MQTT notification`);
}

const status = spawn(agentBin, ['--config', path.join(dir, 'agent.ini'), 'status'], { stdio: 'inherit' });
await new Promise((r) => status.once('exit', r));
agent.kill('SIGTERM');
const code = await new Promise((r) => agent.once('exit', (c) => r(c)));

for (const job of jobs) {
  const { patches } = await admin(cloud.adminUrl, 'GET', `/patches?jobId=${job.job_id}`);
  say(`${job.job_name}: ${patches.length} PATCHes received by the cloud; the last one:`);
  const last = patches[patches.length - 1];
  console.log(JSON.stringify(last?.body ?? null, null, 2));
}
say(`agent exited with code ${code}`);
const unfinished = rows.filter((row) => !final.has(row.status));
if (unfinished.length > 0 || code !== 0) {
  console.error(`demo failed: ${unfinished.length} job(s) did not finish, agent exit code ${code}`);
  process.exit(1);
}
// the reference cloud is still running (and holds a pipe open): stop it with us
process.exit(0);
