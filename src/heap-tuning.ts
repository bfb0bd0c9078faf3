// V8 settings of the agent, applied before any other module of ours runs
// (main.ts imports this first), in the single executable and on the system's
// nodejs (armhf; Node 18 and 20 accept every flag set unconditionally below: the
// armhf integration test checks `node --v8-options`). Single executables take no
// V8 flags on their command line (sea-config has no execArgv), and
// NODE_OPTIONS in the unit would be inherited by every job step that runs
// node. v8.setFlagsFromString works for flags V8 reads while running:
//
// --semi-space-growth-factor=1: the young generation stays at its initial
//   size instead of doubling under the start-up allocations (measured at
//   figure 1's point: 2 MiB resident instead of 5.8 MiB). An idle poll
//   allocates little, so the extra scavenges cost nothing measurable.
// --no-opt --no-sparkplug: JavaScript runs in V8's interpreter only. The agent
//   is idle nearly always, and its busy paths (step output, file writes) are in
//   native code; what the optimizing and baseline compilers cost is memory:
//   their code pages of the executable, their zones and the compiled code
//   (figure 1: 5.3 MiB less resident; figure 3's CPU per idle poll measured
//   2.19 ms with them off vs 2.69 ms on, no worse within its noise).
// --no-maglev: the same for Maglev, V8's mid tier: off by default in Node 20's
//   V8 11.3, on in Node 24's V8 13.6 (the executables), and --no-opt covers only
//   TurboFan. With Maglev on, the idle
//   agent compiled its hot functions with it at start: figure 1 on Node 24 was
//   65.1 MiB with it, 61.0 without (-2.4 MiB of the executable's code pages, the
//   Maglev compiler itself; -1.8 MiB anonymous: its zones and code); figure 3's CPU
//   per idle poll 2.27-2.44 ms without it vs 2.06-2.15 ms with it (two runs each on
//   a loaded machine: about 0.2 ms more, a verdict that stays missed). Set only where
//   V8 has the flag (src/v8-tiers.ts): Node 18's V8 does not, and would print
//   "unrecognized flag" at every start.
// Side effect of the code-generation flags (not of the young generation's):
// V8 checks a hash of its flags before using a code cache, so Node's built-in
// modules loaded after this point compile from source instead of from Node's
// embedded code cache (NODE_DEBUG_NATIVE=CODE_CACHE shows them "rejected"). Set
// after start instead, they cost more: figure 1 on Node 24 measured 65.1 MiB with
// the flags applied 1.5 s after start vs 61.0 applied here, so they stay first.
import v8 from 'node:v8';
import { hasMaglevFlag } from './v8-tiers.js';

v8.setFlagsFromString('--semi-space-growth-factor=1');
v8.setFlagsFromString('--no-opt');
v8.setFlagsFromString('--no-sparkplug');
if (hasMaglevFlag(process.versions.v8)) v8.setFlagsFromString('--no-maglev');
