// Floor of figure 3: the cheapest idle poll Node's own http client can make.
// A keep-alive GET of URL with HEADER=VALUE every INTERVAL_MS ms, COUNT times
// after WARMUP unmeasured ones; prints this process's user+system CPU (all
// threads) per measured request, in ms. Run by the bare Node binary.
'use strict';
const http = require('node:http');
const [url, header, value, intervalMs, count, warmup] = process.argv.slice(2);
const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
const get = () =>
  new Promise((resolve, reject) => {
    http
      .get(url, { agent, headers: { [header]: value } }, (res) => {
        res.resume();
        res.once('end', resolve);
      })
      .once('error', reject);
  });
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const cpuMs = () => {
  const { user, system } = process.cpuUsage();
  return (user + system) / 1000;
};
(async () => {
  for (let i = 0; i < Number(warmup); i += 1) {
    await get();
    await sleep(Number(intervalMs));
  }
  const start = cpuMs();
  for (let i = 0; i < Number(count); i += 1) {
    await get();
    await sleep(Number(intervalMs));
  }
  console.log((cpuMs() - start) / Number(count));
  agent.destroy();
})().catch((error) => {
  console.error(error.message);
  process.exitCode = 1;
});
