// Runs the reference cloud as its own process (make demo, nspawn test,
// benchmarks). Bundled with:
//   esbuild test/cloud/main.ts --bundle --platform=node --format=cjs --outfile=build/reference-cloud.cjs
// Prints one JSON line {url, adminUrl, port, generation} once listening; stops on SIGTERM/SIGINT.
import { readFileSync } from 'node:fs';
import { rename, writeFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import type { ApiGeneration } from '../../src/contract/types.js';
import type { CancelMode } from './cloud-core.js';
import { connectPushPublisher } from './push-notify.js';
import { startReferenceCloud, type DeviceSeed, type ProvisioningKeySeed, type ReferenceCloud } from './reference-cloud.js';

const USAGE = `usage: reference-cloud [--port N] [--generation devices|agents] [--device UUID:KEY[:inactive|:incomplete]]...
       [--provisioning-key KEY[:expired]]... [--state-file FILE] [--tls-cert FILE --tls-key FILE]
       [--registration-ca-cert FILE] [--cancel-mode off|409|410|200-canceled] [--no-job-answer contract|204]
       [--base-path /api/v1] [--no-request-log] [--mqtt-broker mqtt://127.0.0.1:PORT [--mqtt-user USER:PASSWORD] [--tenant-id ID]]`;

/** The parsed command line of the standalone reference cloud. */
interface CliOptions {
  port: number;
  generation: ApiGeneration;
  devices: DeviceSeed[];
  provisioningKeys: ProvisioningKeySeed[];
  stateFile: string | null;
  tls: { cert: string; key: string } | null;
  registrationCaCert: string | null;
  cancelMode: CancelMode;
  noJobAnswer: 'contract' | '204';
  basePath: string;
  recordRequests: boolean;
  /** Publish job notifications through this broker (as the real servers do). */
  mqtt: { url: string; username?: string; password?: string; tenantId: string } | null;
}

// Parses argv into options, throwing a message naming the bad argument.
function parseCommandLine(argv: string[]): CliOptions {
  const { values } = parseArgs({
    args: argv,
    options: {
      port: { type: 'string', default: '0' },
      generation: { type: 'string', default: 'devices' },
      device: { type: 'string', multiple: true, default: [] },
      'provisioning-key': { type: 'string', multiple: true, default: [] },
      'state-file': { type: 'string' },
      'tls-cert': { type: 'string' },
      'tls-key': { type: 'string' },
      'registration-ca-cert': { type: 'string' },
      'cancel-mode': { type: 'string', default: 'off' },
      'no-job-answer': { type: 'string', default: 'contract' },
      'base-path': { type: 'string', default: '/api/v1' },
      'no-request-log': { type: 'boolean', default: false },
      'mqtt-broker': { type: 'string' },
      'mqtt-user': { type: 'string' },
      'tenant-id': { type: 'string', default: 'tenant-1' },
      help: { type: 'boolean', default: false },
    },
    strict: true,
  });
  if (values.help) throw new Error(USAGE);
  const port = Number(values.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`--port must be 0..65535, got ${values.port}`);
  if (values.generation !== 'devices' && values.generation !== 'agents') throw new Error(`--generation must be devices or agents, got ${values.generation}`);
  const devices = (values.device ?? []).map((spec): DeviceSeed => {
    const [uuid, key, flag] = spec.split(':');
    if (!uuid || !key || (flag !== undefined && flag !== 'inactive' && flag !== 'incomplete')) {
      throw new Error(`--device must be UUID:KEY[:inactive|:incomplete], got ${spec}`);
    }
    return { uuid, apiKey: key, active: flag !== 'inactive', registrationComplete: flag !== 'incomplete' };
  });
  const provisioningKeys = (values['provisioning-key'] ?? []).map((spec): ProvisioningKeySeed => {
    const expired = spec.endsWith(':expired');
    return { key: expired ? spec.slice(0, -':expired'.length) : spec, expired };
  });
  if ((values['tls-cert'] === undefined) !== (values['tls-key'] === undefined)) throw new Error('--tls-cert and --tls-key go together');
  const modes: CancelMode[] = ['off', '409', '410', '200-canceled'];
  if (!modes.includes(values['cancel-mode'] as CancelMode)) throw new Error(`--cancel-mode must be one of ${modes.join(', ')}`);
  if (values['no-job-answer'] !== 'contract' && values['no-job-answer'] !== '204') throw new Error('--no-job-answer must be contract or 204');
  return {
    port,
    generation: values.generation,
    devices,
    provisioningKeys,
    stateFile: values['state-file'] ?? null,
    tls:
      values['tls-cert'] !== undefined && values['tls-key'] !== undefined
        ? { cert: readFileSync(values['tls-cert'], 'utf8'), key: readFileSync(values['tls-key'], 'utf8') }
        : null,
    registrationCaCert: values['registration-ca-cert'] !== undefined ? readFileSync(values['registration-ca-cert'], 'utf8') : null,
    cancelMode: values['cancel-mode'] as CancelMode,
    noJobAnswer: values['no-job-answer'],
    basePath: values['base-path'],
    recordRequests: !values['no-request-log'],
    mqtt: parseMqtt(values['mqtt-broker'], values['mqtt-user'], values['tenant-id']),
  };
}

function parseMqtt(url: string | undefined, user: string | undefined, tenantId: string): CliOptions['mqtt'] {
  if (url === undefined) {
    if (user !== undefined) throw new Error('--mqtt-user needs --mqtt-broker');
    return null;
  }
  if (!/^mqtts?:\/\/[^/]+$/.test(url)) throw new Error(`--mqtt-broker must be mqtt://host:port or mqtts://host:port, got ${url}`);
  if (user === undefined) return { url, tenantId };
  const colon = user.indexOf(':');
  if (colon < 1) throw new Error('--mqtt-user must be USER:PASSWORD');
  return { url, username: user.slice(0, colon), password: user.slice(colon + 1), tenantId };
}

// Writes the snapshot atomically so a reader never sees half a file.
async function writeSnapshot(cloud: ReferenceCloud, file: string): Promise<void> {
  const temp = `${file}.tmp`;
  await writeFile(temp, `${JSON.stringify(cloud.snapshot(), null, 2)}\n`);
  await rename(temp, file);
}

// Starts the server and wires signals; the state file is a snapshot refreshed at most every 50 ms.
async function runReferenceCloud(argv: string[]): Promise<void> {
  const cli = parseCommandLine(argv);
  let cloudRef: ReferenceCloud | null = null;
  let pending: NodeJS.Timeout | null = null;
  let writing: Promise<void> = Promise.resolve();
  const flush = (): Promise<void> => {
    if (cli.stateFile === null || cloudRef === null) return writing;
    const cloud = cloudRef;
    const file = cli.stateFile;
    writing = writing.then(() => writeSnapshot(cloud, file)).catch((error: unknown) => {
      process.stderr.write(`reference-cloud: cannot write ${file}: ${String(error)}\n`);
    });
    return writing;
  };
  const publisher = cli.mqtt
    ? await connectPushPublisher({
        url: cli.mqtt.url,
        ...(cli.mqtt.username !== undefined ? { username: cli.mqtt.username } : {}),
        ...(cli.mqtt.password !== undefined ? { password: cli.mqtt.password } : {}),
      })
    : null;
  const cloud = await startReferenceCloud({
    ...(publisher && cli.mqtt ? { push: { publisher, tenantId: cli.mqtt.tenantId } } : {}),
    port: cli.port,
    generation: cli.generation,
    devices: cli.devices,
    provisioningKeys: cli.provisioningKeys,
    ...(cli.tls ? { tls: cli.tls } : {}),
    ...(cli.registrationCaCert !== null ? { registrationCaCert: cli.registrationCaCert } : {}),
    cancelMode: cli.cancelMode,
    noJobAnswer: cli.noJobAnswer,
    basePath: cli.basePath,
    recordRequests: cli.recordRequests,
    onChange: () => {
      if (cli.stateFile === null || pending !== null) return;
      pending = setTimeout(() => {
        pending = null;
        void flush();
      }, 50);
    },
  });
  cloudRef = cloud;
  await flush();
  process.stdout.write(`${JSON.stringify({ url: cloud.url, adminUrl: cloud.adminUrl, port: cloud.port, generation: cloud.generation })}\n`);
  const stop = (): void => {
    if (pending !== null) clearTimeout(pending);
    pending = null;
    cloud
      .close()
      .then(() => publisher?.close())
      .then(flush)
      .then(() => process.exit(0))
      .catch((error: unknown) => {
        process.stderr.write(`reference-cloud: ${String(error)}\n`);
        process.exit(1);
      });
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}

runReferenceCloud(process.argv.slice(2)).catch((error: unknown) => {
  process.stderr.write(`reference-cloud: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(2);
});
