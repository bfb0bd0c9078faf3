// src/v8-tiers.ts: which V8 has the --maglev flag (src/heap-tuning.ts sets
// --no-maglev only there), from the version string, checked against what real
// Node binaries list in `--v8-options` and print when the flag is set.
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { hasMaglevFlag, v8MajorOf } from '../../src/v8-tiers.js';

const PINS_FILE = path.resolve(__dirname, '../../src/build/node-pins.json');
// src/build/lib.sh's CACHE; fetch-node.sh keeps the pinned binaries there.
const CACHE = process.env.CLOUDJOBS_CACHE ?? path.join(process.env.XDG_CACHE_HOME ?? path.join(os.homedir(), '.cache'), 'cloudjobs');

/** The stripped pinned x64 Node, if a build on this machine fetched it. */
function pinnedX64Node(): string | null {
  const pin = (JSON.parse(fs.readFileSync(PINS_FILE, 'utf8')) as Record<string, { package: string; version: string }>).x64!;
  const file = path.join(CACHE, 'node', `${pin.package}-${pin.version}`, 'node.stripped');
  return process.arch === 'x64' && fs.existsSync(file) ? file : null;
}

/** What `node` says about --maglev: its V8 version, whether --v8-options lists it, and stderr of setting --no-maglev. */
function probeMaglev(node: string): { v8: string; listed: boolean; setStderr: string } {
  const v8 = execFileSync(node, ['-p', 'process.versions.v8'], { encoding: 'utf8' }).trim();
  const options = execFileSync(node, ['--v8-options'], { encoding: 'utf8', maxBuffer: 16 * 1024 * 1024 });
  const set = spawnSync(node, ['-e', "require('node:v8').setFlagsFromString('--no-maglev')"], { encoding: 'utf8' });
  expect(set.status).toBe(0);
  return { v8, listed: /^ +--maglev /m.test(options), setStderr: set.stderr };
}

describe('v8MajorOf', () => {
  it('reads the major version of a Node-patched V8 version', () => {
    expect(v8MajorOf('13.6.233.17-node.63')).toBe(13);
    expect(v8MajorOf('10.2.154.26-node.37')).toBe(10);
  });

  it('is null for a string that does not start with a version', () => {
    expect(v8MajorOf('')).toBeNull();
    expect(v8MajorOf('v13.6')).toBeNull();
    expect(v8MajorOf('13')).toBeNull();
  });
});

describe('hasMaglevFlag', () => {
  it('is false for Node 18 (V8 10.2, no --maglev in its --v8-options)', () => {
    expect(hasMaglevFlag('10.2.154.26-node.37')).toBe(false);
  });

  it('is true for Node 20 (V8 11.3) and Node 24 (V8 13.6)', () => {
    expect(hasMaglevFlag('11.3.244.8-node.38')).toBe(true);
    expect(hasMaglevFlag('13.6.233.17-node.63')).toBe(true);
  });

  it('is false for a version it cannot read, so nothing unknown is set', () => {
    expect(hasMaglevFlag('')).toBe(false);
    expect(hasMaglevFlag('unknown')).toBe(false);
  });

  it('matches the --v8-options of the node running the tests, which sets --no-maglev silently when it has the flag', () => {
    const probe = probeMaglev(process.execPath);
    expect(hasMaglevFlag(probe.v8)).toBe(probe.listed);
    if (probe.listed) expect(probe.setStderr).toBe('');
    else expect(probe.setStderr).toContain('unrecognized flag --no-maglev');
  });

  const pinned = pinnedX64Node();
  it.skipIf(pinned === null)('matches the pinned Node of the executables (when fetched: make build)', () => {
    const probe = probeMaglev(pinned!);
    expect(probe.listed).toBe(true);
    expect(hasMaglevFlag(probe.v8)).toBe(true);
    expect(probe.setStderr).toBe('');
  });
});
