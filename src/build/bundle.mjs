// Bundles the agent into ONE CommonJS file for one arch, with the version and
// that arch's datagram addon (base64) compiled in as defines:
//   __CLOUDJOBS_VERSION__: string   (package.json "version")
//   __CLOUDJOBS_ADDON__:   string   (base64 of build/native/<arch>/datagram.node)
// The addon rides in the bundle because armv7's Node 20.11 has no SEA assets API.
// Usage: node src/build/bundle.mjs ARCH [ENTRY] [OUT]
// Writes OUT only when its bytes change, so later steps can rely on mtimes.
import { build } from 'esbuild';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const [arch, entryArg, outArg] = process.argv.slice(2);
if (!['x64', 'arm64', 'armv7'].includes(arch ?? '')) {
  console.error(`bundle: unknown arch '${arch}' (known: x64 arm64 armv7)`);
  process.exit(2);
}
const entry = path.resolve(root, entryArg ?? 'src/main.ts');
const out = path.resolve(root, outArg ?? `build/bundle/${arch}/cloudjobs.cjs`);
const addonFile = path.join(root, 'build/native', arch, 'datagram.node');
if (!fs.existsSync(addonFile)) {
  console.error(`bundle: ${addonFile} is missing; build it first with src/build/addon.sh ${arch}`);
  process.exit(1);
}
const { version } = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8'));

const result = await build({
  entryPoints: [entry],
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'cjs',
  write: false,
  outfile: out,
  logLevel: 'warning',
  legalComments: 'eof',
  charset: 'utf8',
  absWorkingDir: root,
  define: {
    __CLOUDJOBS_VERSION__: JSON.stringify(version),
    __CLOUDJOBS_ADDON__: JSON.stringify(fs.readFileSync(addonFile).toString('base64')),
  },
}).catch(() => {
  // esbuild has already printed each error with its file and line.
  console.error(`bundle: ${path.relative(root, entry)} did not bundle for ${arch}`);
  process.exit(1);
});
const bytes = result.outputFiles[0].contents;
const old = fs.existsSync(out) ? fs.readFileSync(out) : null;
if (old === null || !old.equals(Buffer.from(bytes))) {
  fs.mkdirSync(path.dirname(out), { recursive: true });
  fs.writeFileSync(`${out}.tmp`, bytes);
  fs.renameSync(`${out}.tmp`, out);
  console.error(`bundle: ${path.relative(root, out)} (${bytes.length} bytes)`);
}
