// Bundles the agent into ONE CommonJS file for one arch, with the version and
// that arch's datagram addon compiled in as defines:
//   __CLOUDJOBS_VERSION__:       string  (package.json "version", or CLOUDJOBS_VERSION when set:
//                                         `make deb VERSION=x.y.z` builds another version for upgrade tests)
//   __CLOUDJOBS_ADDON__:         string  (x64, arm64: base64 of build/native/<arch>/datagram.node;
//                                         the single executable is one file, so the addon rides inside)
//   __CLOUDJOBS_BUILD_TIME__:    number  (ms since the epoch of debian/changelog's top entry:
//                                         reproducible, and a device clock before it is wrong)
//   __CLOUDJOBS_ADDON_SHA256__:  string  (armhf: sha256 of the addon the package installs next to
//                                         the bundle; the loader refuses any other file)
// The same code for every arch, for Node 18.19 and later: the armhf package runs it on
// Debian's nodejs (bookworm 18.20, trixie 20.19), the executables embed Node 24.
// Usage: node src/build/bundle.mjs ARCH [ENTRY] [OUT]
// Writes OUT only when its bytes change, so later steps can rely on mtimes.
import { createHash } from 'node:crypto';
import { build } from 'esbuild';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const [arch, entryArg, outArg] = process.argv.slice(2);
if (!['x64', 'arm64', 'armhf'].includes(arch ?? '')) {
  console.error(`bundle: unknown arch '${arch}' (known: x64 arm64 armhf)`);
  process.exit(2);
}
const entry = path.resolve(root, entryArg ?? 'src/main.ts');
const out = path.resolve(root, outArg ?? `build/bundle/${arch}/cloudjobs.cjs`);
const addonFile = path.join(root, 'build/native', arch, 'datagram.node');
if (!fs.existsSync(addonFile)) {
  console.error(`bundle: ${addonFile} is missing; build it first with src/build/addon.sh ${arch}`);
  process.exit(1);
}
const addon = fs.readFileSync(addonFile);
const addonNextToBundle = arch === 'armhf';
const version = process.env.CLOUDJOBS_VERSION || JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')).version;
if (!/^[0-9][0-9A-Za-z.+~]*$/.test(version)) {
  console.error(`bundle: CLOUDJOBS_VERSION '${version}' is not an upstream version (digits first, then letters, digits and . + ~)`);
  process.exit(2);
}

const changelogDate = /^ -- .*>  (.+)$/m.exec(fs.readFileSync(path.join(root, 'debian/changelog'), 'utf8'))?.[1] ?? '';
const buildTime = Date.parse(changelogDate);
if (Number.isNaN(buildTime)) {
  console.error(`bundle: debian/changelog's top entry has no date bundle.mjs can read ('${changelogDate}')`);
  process.exit(1);
}

const result = await build({
  entryPoints: [entry],
  bundle: true,
  platform: 'node',
  target: 'node18',
  format: 'cjs',
  write: false,
  outfile: out,
  logLevel: 'warning',
  // Memory of the running agent (figure 1 of test/bench): the single executable
  // keeps the whole source in the V8 heap for the process's life, and one
  // non-ASCII character makes V8 store all of it as two bytes per character.
  // So: ASCII only (esbuild escapes strings; the legal comments, the one place
  // left with UTF-8, are appended below as an ASCII block) and minified with
  // the names kept (error classes take their name from the class, and stack
  // traces stay readable).
  charset: 'ascii',
  minify: true,
  keepNames: true,
  legalComments: 'external',
  absWorkingDir: root,
  // MQTT.js's tracing package probes for supports-color with a require() a
  // single executable cannot serve (a process warning); see no-debug.cjs
  alias: { debug: './src/build/no-debug.cjs' },
  plugins: [mqttStreamsPlugin()],
  define: {
    __CLOUDJOBS_VERSION__: JSON.stringify(version),
    // A build for production, as bundlers are expected to say. The one package that
    // asks is @dabh/diagnostics (winston's internal debug channel, silent unless
    // DEBUG names a winston namespace): its development build loads tty, kuler
    // and a colour library at start; the production one is a no-op.
    'process.env.NODE_ENV': '"production"',
    // debian/changelog's date: a device clock before it is certainly wrong (TLS errors say so)
    __CLOUDJOBS_BUILD_TIME__: JSON.stringify(buildTime),
    __CLOUDJOBS_ADDON__: JSON.stringify(addonNextToBundle ? '' : addon.toString('base64')),
    __CLOUDJOBS_ADDON_SHA256__: JSON.stringify(addonNextToBundle ? createHash('sha256').update(addon).digest('hex') : ''),
  },
}).catch(() => {
  // esbuild has already printed each error with its file and line.
  console.error(`bundle: ${path.relative(root, entry)} did not bundle for ${arch}`);
  process.exit(1);
});
const code = result.outputFiles.find((file) => file.path === out);
const legal = result.outputFiles.find((file) => file.path !== out);
const bytes = Buffer.concat([Buffer.from(code.contents), Buffer.from(legal ? asciiComment(legal.text) : '')]);
if (bytes.some((byte) => byte > 0x7f)) {
  console.error(`bundle: ${path.relative(root, out)} is not pure ASCII; V8 would keep it at two bytes per character`);
  process.exit(1);
}
const old = fs.existsSync(out) ? fs.readFileSync(out) : null;
if (old === null || !old.equals(bytes)) {
  fs.mkdirSync(path.dirname(out), { recursive: true });
  fs.writeFileSync(`${out}.tmp`, bytes);
  fs.renameSync(`${out}.tmp`, out);
  console.error(`bundle: ${path.relative(root, out)} (${bytes.length} bytes)`);
}

// The bundled packages' license comments as one trailing block comment, with
// non-ASCII characters written as \u escapes (names such as "W\u00e4rting").
function asciiComment(text) {
  const escaped = text
    .replace(/[^\x00-\x7f]/gu, (ch) => [...ch].map((c) => `\\u{${c.codePointAt(0).toString(16)}}`).join(''))
    .replaceAll('*/', '* /');
  return `/*! Legal comments of the bundled packages:\n${escaped}*/\n`;
}

// MQTT.js, mqtt-packet and bl use Node's own streams instead of the npm copy
// (readable-stream); see node-stream.cjs. Others (winston) keep theirs.
function mqttStreamsPlugin() {
  const users = /[\\/]node_modules[\\/](mqtt|mqtt-packet|bl)[\\/]/;
  return {
    name: 'mqtt-node-streams',
    setup(pluginBuild) {
      pluginBuild.onResolve({ filter: /^readable-stream$/ }, (args) =>
        users.test(args.importer) ? { path: path.join(root, 'src/build/node-stream.cjs') } : undefined,
      );
    },
  };
}
