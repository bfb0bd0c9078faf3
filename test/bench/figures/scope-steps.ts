// Figure 16 (issue 20): the per-step cost of a step inside a transient
// systemd scope vs the direct spawn, measured side by side in one container
// by test/bench/scope-steps.sh (systemd must be PID 1, which it is not here).
import { execFileSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { formatMs, median, type ResultRow } from '../lib/results.js';

const ROUNDS = 3;

/** Measures figure 16 with the amd64 .deb in `buildDir`. */
export function measureScopeSteps(benchDir: string, buildDir: string): ResultRow {
  // the newest, as the integration tests pick it (self-update.sh leaves other versions in build/)
  const deb = readdirSync(buildDir)
    .filter((name) => /^cloudjobs_.*_amd64\.deb$/.test(name))
    .sort((a, b) => statSync(path.join(buildDir, b)).mtimeMs - statSync(path.join(buildDir, a)).mtimeMs)[0];
  if (deb === undefined) throw new Error(`no amd64 .deb in ${buildDir} (make deb ARCH=amd64)`);
  const out = execFileSync(path.join(benchDir, 'scope-steps.sh'), [path.join(buildDir, deb), String(ROUNDS)], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
    timeout: 15 * 60_000,
  });
  const result = JSON.parse(out.trim().split('\n').pop() ?? '{}') as { steps: number; scoped: number[]; direct: number[] };
  const scoped = median(result.scoped);
  const direct = median(result.direct);
  return {
    row: `16 step in a transient scope (x64, nspawn)`,
    baseline: `${formatMs(direct)}/step`,
    figure: `${formatMs(scoped)}/step`,
    ratio: scoped / direct,
    target: 'report',
    verdict: 'report',
    note:
      `medians of ${ROUNDS} side-by-side rounds of a ${result.steps}-step /bin/true job (cloudjobs exec, run as the cloudjobs user) in a trixie container under systemd: ` +
      `each step in its own scope of the job's slice (systemd-run --scope, choom, setpriv) vs the same executable seeing no systemd (direct spawn, ids set by the spawn). ` +
      `Per-step means, scoped ${result.scoped.join('/')} ms, direct ${result.direct.join('/')} ms.`,
  };
}
