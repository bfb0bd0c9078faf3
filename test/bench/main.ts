// `make bench` (via test/bench/run.sh): runs every figure of issue 7 against
// the executables in build/, prints the table as it goes and writes
// RESULTS.md. A figure that cannot be measured becomes a "failed" row; the
// process still exits 0 because benchmarks report, they never fail the build.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { measureDispatchLatency } from './figures/dispatch-latency.js';
import { measureHerd } from './figures/herd.js';
import { measureIdleCost } from './figures/idle-cost.js';
import { measureIdleMemory } from './figures/idle-memory.js';
import { measureOutputVolume } from './figures/output-volume.js';
import { measurePushHerd, measurePushLatency, measurePushMemory, measurePushWire } from './figures/push.js';
import { measureParallelMemory } from './figures/parallel-memory.js';
import { measureQueueDrain } from './figures/queue-drain.js';
import { measureSizes } from './figures/sizes.js';
import { measureStartTime } from './figures/start-time.js';
import { measureScopeSteps } from './figures/scope-steps.js';
import { measureStepOverhead } from './figures/step-overhead.js';
import { loadBenchTargets, type BenchTarget } from './lib/bench-target.js';
import { describeMachine } from './lib/machine.js';
import { buildFailedRow, formatMs, renderResultsMarkdown, renderTextTable, type ResultRow } from './lib/results.js';

const START_RUNS = 5;
const LATENCY_SAMPLES = 12;
const HERD_AGENTS = 1000;
const HERD_SCALE = 10;
const PUSH_SAMPLES = 30;
// 1,000 MQTT clients and the broker share this machine's cores with the agents' clock sped up: at 10x the
// wall-clock bursts of event handling show up as agent-time peaks; 3x keeps the figure about the policy.
const PUSH_HERD_SCALE = 3;

const METHOD = [
  'Each figure runs the built single executable (build/cloudjobs-linux-<arch>) as `cloudjobs run` against the reference cloud (test/cloud) on a loopback port, with its own temp agent.ini and state directory (test/e2e/harness.ts) and its runtime directory on a tmpfs (/dev/shm, as /run/cloudjobs is under the unit), as root with no_new_privs set as the shipped unit sets it (NoNewPrivileges=yes; the harness starts the agent through `setpriv --no-new-privs`), with jobs run as `nobody`: the spawn itself switches uid and gid (src/jobs/launch.ts). Figure 4 also reports a user with a supplementary group, whom setpriv switches.',
  'Baselines use the very Node binary the executable is made from (src/build/fetch-node.sh: the pinned, verified, stripped official build) and, where a single executable is compared, one made by src/build/sea.sh from test/bench/baseline/idle.js.',
  'Time scaling: the agent reads CLOUDJOBS_TEST_TIME_SCALE=N and plays every wait N times faster. Figures 1, 3 and 5 use it only to poll often (a 1 s interval at 20x/40x/5x); figure 6 uses real time (30 s interval, which must never elapse); figure 7 scales the 30 s interval 10x and adds back the real dispatch time; figure 8 runs the whole herd at 10x.',
  'Figure 10 (the arm64 and armv7 rows of figures 1, 2 and 4) runs under qemu-user (qemu-aarch64-static -L /usr/aarch64-linux-gnu, qemu-arm-static -L /usr/arm-linux-gnueabihf) on this x64 machine: indicative only, never judged; RSS includes the emulator, times include translation.',
  'Figures 11 to 14 (issue 13, push over MQTT) use Debian\'s mosquitto on loopback, the reference cloud publishing each job\'s notification as the real servers do; 11 runs in real time, 12 side by side with an agent without [mqtt], 13 counts TCP payload bytes through a relay, 14 runs 1,000 real push channels (src/cloud/push-channel.ts) in this process at 3x.',
  'Ratios are figure / baseline. Verdicts: met/missed against the issue 7 target; report where the issue asks only for the number; indicative under emulation; failed when a figure could not be measured (the note says why).',
];

interface Figure {
  number: number;
  run(): Promise<ResultRow | ResultRow[]>;
  /** Row name and target used if it throws. */
  row: string;
  target: string;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      root: { type: 'string' },
      targets: { type: 'string' },
      'cloud-bundle': { type: 'string' },
      results: { type: 'string' },
      only: { type: 'string' },
      build: { type: 'string' },
      out: { type: 'string' },
    },
    strict: true,
  });
  const root = path.resolve(values.root ?? '.');
  const buildDir = path.resolve(values.build ?? path.join(root, 'build'));
  const outDir = path.resolve(values.out ?? path.join(buildDir, 'bench'));
  const targets = loadBenchTargets(values.targets ?? path.join(outDir, 'targets.json'));
  const benchDir = path.join(root, 'test/bench');
  const only = values.only ? new Set(values.only.split(',').map(Number)) : null;
  const host = targets.find((t) => !t.emulated);
  const emulated = targets.filter((t) => t.emulated);
  const started = Date.now();
  const machine = describeMachine(root, targets.map((t) => `${t.arch} node ${t.nodeVersion}`).join(', '));

  const figures: Figure[] = [];
  if (host) {
    figures.push(
      { number: 1, row: '1 idle RSS (x64)', target: '<= 1.15x', run: () => measureIdleMemory(host) },
      { number: 2, row: '2 start to READY (x64)', target: '<= 2x', run: () => measureStartTime(host, benchDir, START_RUNS) },
      { number: 3, row: '3 idle cost (x64)', target: '< 1 ms/poll', run: () => measureIdleCost(host, benchDir) },
      { number: 4, row: '4 200 steps (x64)', target: '<= 1.3x', run: () => measureStepOverhead(host, benchDir) },
      { number: 5, row: '5 256 MiB stdout (x64)', target: '<= 1.3x, < +16 MiB', run: () => measureOutputVolume(host) },
      { number: 6, row: '6 drain 50 jobs (x64)', target: '< 5 s', run: () => measureQueueDrain(host, benchDir) },
      { number: 7, row: '7 dispatch latency (x64)', target: 'report', run: () => measureDispatchLatency(host, LATENCY_SAMPLES) },
      // issue 13: push dispatch over MQTT (Debian's mosquitto on loopback)
      { number: 11, row: '11 dispatch latency, push (x64)', target: 'median < 1 s, p99 < 2 s', run: () => measurePushLatency(host, PUSH_SAMPLES) },
      { number: 12, row: '12 idle RSS with push (x64)', target: '<= +4 MiB', run: () => measurePushMemory(host) },
      { number: 13, row: '13 idle bytes/hour, push (x64)', target: 'report', run: () => measurePushWire(host) },
      { number: 15, row: '15 RSS after a 99-member parallel job (x64)', target: '< +16 MiB', run: () => measureParallelMemory(host) },
    );
  }
  figures.push({
    number: 8,
    row: `8 herd: ${HERD_AGENTS} agents`,
    target: '<= 1.5x',
    run: () => measureHerd({ cloudBundle: values['cloud-bundle'] ?? path.join(outDir, 'reference-cloud.cjs'), agents: HERD_AGENTS, scale: HERD_SCALE }),
  });
  figures.push({ number: 14, row: `14 herd: ${HERD_AGENTS} push channels`, target: 'report', run: () => measurePushHerd(HERD_AGENTS, PUSH_HERD_SCALE) });
  figures.push({ number: 9, row: '9 sizes', target: 'report', run: async () => measureSizes(targets, buildDir) });
  // issue 20: needs systemd as PID 1, so it runs in an nspawn container with the .deb
  figures.push({ number: 16, row: '16 step in a transient scope (x64, nspawn)', target: 'report', run: async () => measureScopeSteps(benchDir, buildDir) });
  for (const target of emulated) figures.push(...emulatedFigures(target, benchDir));

  const rows: ResultRow[] = [];
  for (const figure of figures) {
    if (only && !only.has(figure.number)) continue;
    const t0 = Date.now();
    process.stderr.write(`bench: figure ${figure.number}: ${figure.row} ...\n`);
    let produced: ResultRow[];
    try {
      const result = await figure.run();
      produced = Array.isArray(result) ? result : [result];
    } catch (error) {
      produced = [buildFailedRow(figure.row, figure.target, error)];
    }
    rows.push(...produced);
    process.stderr.write(`${renderTextTable(produced).split('\n').slice(2).join('\n')}  (${formatMs(Date.now() - t0)})\n`);
  }

  const analysisFile = path.join(benchDir, 'why-missed.md');
  const analysis = existsSync(analysisFile) ? readFileSync(analysisFile, 'utf8') : undefined;
  const doc = { machine, rows, method: METHOD, durationMs: Date.now() - started, ...(analysis ? { analysis } : {}) };
  process.stdout.write(`\n${renderTextTable(rows)}`);
  // A partial run (--only) must not replace the committed results of a full one.
  const out = only ? path.join(outDir, 'RESULTS.partial.md') : (values.results ?? path.join(benchDir, 'RESULTS.md'));
  writeFileSync(out, renderResultsMarkdown(doc));
  process.stdout.write(`\nwritten to ${path.relative(process.cwd(), out)} (${formatMs(doc.durationMs)})\n`);
}

// Figure 10: figures 1, 2 and 4 of an emulated arch.
function emulatedFigures(target: BenchTarget, benchDir: string): Figure[] {
  const label = `(${target.arch}, qemu)`;
  return [
    { number: 10, row: `10 idle RSS ${label}`, target: 'indicative', run: async () => relabel(await measureIdleMemory(target)) },
    { number: 10, row: `10 start to READY ${label}`, target: 'indicative', run: async () => relabel(await measureStartTime(target, benchDir, 3)) },
    { number: 10, row: `10 200 steps ${label}`, target: 'indicative', run: async () => (await measureStepOverhead(target, benchDir)).map(relabel) },
  ];
}

function relabel(row: ResultRow): ResultRow {
  return { ...row, row: `10 ${row.row.replace(/^\d+ /, '').replace(/\)$/, ', qemu)')}` };
}

main().catch((error: unknown) => {
  // Even a broken harness must not fail `make`: say what broke.
  process.stderr.write(`bench: harness error: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
});
