// Pieces every command shares: loading the configuration for a command line,
// building its logger, loading the native helper.
import fs from 'node:fs';
import type { Clock } from '../clock/clock.js';
import { createHttpTransport, type HttpTransport } from '../cloud/http.js';
import { loadTlsSettings } from '../cloud/tls-options.js';
import { loadConfig, type LoadedConfig } from '../config/load.js';
import type { Config } from '../config/schema.js';
import { createConsoleTransport, createLog, type Log, type LogLevel } from '../log/log.js';
import { createJournaldTransport, shouldUseJournal } from '../service/journald-transport.js';
import { locatePackagedAddon, tryLoadDatagramSender, type DatagramSender, type NativeLoad } from '../service/native.js';
import type { Command } from './args.js';
import type { CliContext } from './context.js';

/** Loads the configuration named by the command line (a missing default file is fine). */
export function loadCliConfig(ctx: CliContext, command: Command, options: { requireApiUrl: boolean }): LoadedConfig {
  return loadConfig({
    file: command.configFile,
    fileOptional: !command.configGiven,
    env: ctx.env,
    requireApiUrl: options.requireApiUrl,
  });
}

/** Options of createCliLog. */
export interface CliLogOptions {
  level: LogLevel;
  /** The native sender; with it, and stderr connected to the journal, entries go to journald natively. */
  sender?: DatagramSender | null;
  secrets?: () => readonly string[];
}

/** Builds the command's logger: journald when systemd connected stderr to the journal, else lines on stderr. */
export function createCliLog(ctx: CliContext, options: CliLogOptions): { log: Log; journal: boolean } {
  const journal = options.sender ? isStderrJournal(ctx) : false;
  const transports = [
    journal && options.sender
      ? createJournaldTransport({ sender: options.sender, fallback: (line) => ctx.stderr.write(`${line}\n`) })
      : createConsoleTransport(ctx.stderr),
  ];
  return { log: createLog({ level: options.level, transports, secrets: options.secrets }), journal };
}

function isStderrJournal(ctx: CliContext): boolean {
  let stderr: { dev: number; ino: number } | null = null;
  try {
    const stat = fs.fstatSync(typeof ctx.stderr.fd === 'number' ? ctx.stderr.fd : 2);
    stderr = { dev: stat.dev, ino: stat.ino };
  } catch {
    stderr = null;
  }
  return shouldUseJournal({ journalStream: ctx.env.JOURNAL_STREAM, stderr });
}

/**
 * Loads the native helper: the one a package installed, in place (the armhf bundle's
 * neighbour, or <prefix>/lib/cloudjobs for a single executable in <prefix>/bin), else
 * the embedded one written into `dir` (root) or a private temp dir. Logs nothing:
 * the caller decides what a failure means (see native-preflight.ts).
 */
export function loadNative(ctx: CliContext, dir: string): NativeLoad | null {
  const packaged = ctx.addon && ctx.executable ? locatePackagedAddon(ctx.executable, ctx.addon) : null;
  const installed = ctx.installedAddon ?? packaged;
  if (!ctx.addon && !installed) return null;
  return tryLoadDatagramSender({ addonBytes: ctx.addon, installed, dir });
}

// Debian's CA bundle, added to Node's own roots when present.
export const SYSTEM_CA_BUNDLE = '/etc/ssl/certs/ca-certificates.crt';

/** The keep-alive transport to the cloud with the configured TLS (CAs, pins, client certificate) and a registration-stored CA. */
export async function createCloudTransport(
  config: Config,
  clock: Clock,
  version: string,
  storedCaPem: string | null = null,
): Promise<HttpTransport> {
  const tls = await loadTlsSettings({
    caFile: config.cloud.ca_file,
    storedCaPem,
    systemBundleFile: SYSTEM_CA_BUNDLE,
    pinSha256: config.cloud.pin_sha256,
    clientCert: config.cloud.client_cert,
    clientKey: config.cloud.client_key,
  });
  return createHttpTransport({ timeoutMs: config.cloud.request_timeout, clock, tls, userAgent: `cloudjobs/${version}` });
}
