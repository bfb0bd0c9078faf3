// Figure 9: bytes of each executable and each .deb.
import { readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import type { BenchTarget } from '../lib/bench-target.js';
import { formatBytes, type ResultRow } from '../lib/results.js';

const DEB_ARCH: Record<string, string> = { x64: 'amd64', arm64: 'arm64', armv7: 'armhf' };

/** Reports the size of each executable (vs the baseline executable from the same Node) and each .deb found in `buildDir`. */
export function measureSizes(targets: readonly BenchTarget[], buildDir: string): ResultRow[] {
  const rows: ResultRow[] = [];
  const debs = readdirSync(buildDir).filter((name) => name.endsWith('.deb'));
  for (const target of targets) {
    const exe = statSync(target.agentFile).size;
    const base = statSync(target.baselineSeaFile).size;
    rows.push({
      row: `9 size: cloudjobs-linux-${target.arch}`,
      baseline: formatBytes(base),
      figure: formatBytes(exe),
      ratio: exe / base,
      target: 'report',
      verdict: 'report',
      note: `${exe} bytes vs ${base} bytes for the same stripped Node ${target.nodeVersion} made into a single executable of an empty program: our code and addon add ${formatBytes(exe - base)}.`,
    });
    const deb = debs.find((name) => name.endsWith(`_${DEB_ARCH[target.arch]}.deb`));
    if (deb) {
      const size = statSync(path.join(buildDir, deb)).size;
      rows.push({
        row: `9 size: ${deb}`,
        baseline: formatBytes(exe),
        figure: formatBytes(size),
        ratio: size / exe,
        target: 'report',
        verdict: 'report',
        note: `${size} bytes; baseline: the executable it installs (${exe} bytes), so the ratio is the package's compression.`,
      });
    } else {
      rows.push({ row: `9 size: .deb ${DEB_ARCH[target.arch]}`, baseline: '-', figure: '-', ratio: null, target: 'report', verdict: 'failed', note: `no build/*_${DEB_ARCH[target.arch]}.deb (make deb) when the benchmark ran.` });
    }
  }
  return rows;
}
