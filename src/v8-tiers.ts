// Which of V8's compiler tiers a V8 version has a flag for, from its version
// string alone (process.versions.v8), so src/heap-tuning.ts sets only flags the
// running V8 knows: v8.setFlagsFromString prints "Error: unrecognized flag" to
// stderr for any other, on every start.
//
// Maglev (the mid tier between Sparkplug and TurboFan) is checked against
// `node --v8-options` of: Node 18.20.4 (V8 10.2, Debian bookworm's armhf nodejs):
// no --maglev flag; Node 20.20.2 (V8 11.3): --maglev, off by default; Node 24.22.3
// (V8 13.6, the executables): --maglev, on by default, and not covered by --no-opt
// (in V8 11 and later --opt is an alias of --turbofan only).

/** V8's major version in `version` ("13.6.233.17-node.63"), or null if it does not start with one. */
export function v8MajorOf(version: string): number | null {
  const match = /^(\d+)\./.exec(version);
  return match ? Number(match[1]) : null;
}

/** True when V8 `version` has the --maglev flag (V8 11 and later). */
export function hasMaglevFlag(version: string): boolean {
  const major = v8MajorOf(version);
  return major !== null && major >= 11;
}
