// Baseline of figures 4 and 6: spawns ARGV... COUNT times in a row, each after
// the previous one exited, and prints the wall time in ms. Run by the same
// Node binary the single executable is made of.
'use strict';
const { spawn } = require('node:child_process');
const count = Number(process.argv[2]);
const argv = process.argv.slice(3);
const runOnce = () =>
  new Promise((resolve, reject) => {
    const child = spawn(argv[0], argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout.resume();
    child.stderr.resume();
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`${argv.join(' ')} exited with ${code}`))));
  });
(async () => {
  const start = process.hrtime.bigint();
  for (let i = 0; i < count; i += 1) await runOnce();
  console.log(Number(process.hrtime.bigint() - start) / 1e6);
})().catch((error) => {
  console.error(error.message);
  process.exitCode = 1;
});
