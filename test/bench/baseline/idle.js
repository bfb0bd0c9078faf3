// Baseline program of the benchmarks, built into a single executable from the
// same Node binary as cloudjobs (test/bench/run.sh): no argument keeps an
// empty setInterval alive (figure 1); `tick MS` wakes every MS ms doing
// nothing (figure 3's CPU floor per wakeup); `exit` ends at once (figure 2).
'use strict';
const mode = process.argv[2] ?? 'idle';
if (mode === 'tick') setInterval(() => {}, Number(process.argv[3]));
else if (mode !== 'exit') setInterval(() => {}, 60_000);
