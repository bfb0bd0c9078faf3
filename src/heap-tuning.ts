// V8 settings of the agent, applied before any other module of ours runs
// (main.ts imports this first), in the single executable and on the system's
// nodejs (armhf; Node 18 and 20 accept every flag below: the armhf integration
// test checks `node --v8-options`). Single executables take no
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
import v8 from 'node:v8';

v8.setFlagsFromString('--semi-space-growth-factor=1');
v8.setFlagsFromString('--no-opt');
v8.setFlagsFromString('--no-sparkplug');
