// `cloudjobs run`: builds the agent from the configuration and runs it until
// SIGTERM/SIGINT (what systemd starts). Exit 0 after a clean drain, 78 on a
// configuration error so systemd does not restart into the same error.
import { Agent } from '../agent/agent.js';
import { createEngine } from '../agent/engine-adapter.js';
import { createScaledClock, createSystemClock, type Clock } from '../clock/clock.js';
import { createPollScheduler, createRetryBackoff } from '../cloud/backoff.js';
import { createCloudClient } from '../cloud/client.js';
import { describeError } from '../errors/errors.js';
import { createConsoleTransport, createLog, type Log } from '../log/log.js';
import { createWatchdog, parseWatchdogInterval } from '../service/health.js';
import { createFullCollector } from '../service/memory.js';
import type { DatagramSender } from '../service/native.js';
import { createNotifier } from '../service/sd-notify.js';
import { openHistory } from '../state/history.js';
import { openJournal } from '../state/journal.js';
import { openOutbox } from '../state/outbox.js';
import { removeRuntimeStatus, writeRuntimeStatus } from '../state/runtime-status.js';
import type { Command } from './args.js';
import { EXIT, type CliContext } from './context.js';
import { obtainIdentity } from './obtain-identity.js';
import { createCliLog, createCloudTransport, loadCliConfig, loadNative } from './setup.js';

type RunCommand = Extract<Command, { name: 'run' }>;

// Shutdown spends at most this long sending queued reports; the rest waits on disk.
const FLUSH_TIMEOUT_MS = 5000;

/** Runs the agent in the foreground. */
export async function runAgentCommand(ctx: CliContext, command: RunCommand): Promise<number> {
  ctx.setTitle('cloudjobs run');
  const loaded = loadCliConfig(ctx, command, { requireApiUrl: true });
  const { config } = loaded;
  const clock = createClock(ctx);
  const secrets: string[] = [];
  if (config.cloud.api_key) secrets.push(config.cloud.api_key);

  const bootLog = createLog({ level: config.logging.level, transports: [createConsoleTransport(ctx.stderr)] });
  const sender = loadNative(ctx, config.agent.runtime_dir, bootLog);
  const { log } = createCliLog(ctx, { level: config.logging.level, sender, secrets: () => secrets });
  for (const warning of loaded.warnings) log.warn(warning);
  const notifier = createNotifier({ socketPath: ctx.env.NOTIFY_SOCKET, sender, log });

  const stop = new AbortController();
  let agent: Agent | null = null;
  let stopRequests = 0;
  ctx.onStopSignal((signal) => {
    stopRequests += 1;
    if (agent) {
      log.info(`received ${signal}`);
      agent.stop();
    } else if (!stop.signal.aborted) {
      log.info(`received ${signal} while starting; stopping`);
      notifier.stopping();
      stop.abort();
    }
  });

  const [journal, outbox, history] = await Promise.all([
    openJournal({ stateDir: config.agent.state_dir, log, clock }),
    openOutbox({
      stateDir: config.agent.state_dir,
      maxReports: config.agent.outbox_max_reports,
      maxBytes: config.agent.outbox_max_bytes,
      log,
      clock,
    }),
    openHistory({ stateDir: config.agent.state_dir, size: config.agent.history_size, maxBytes: config.agent.history_max_bytes, log, clock }),
  ]);

  const identity = await obtainIdentity({ ctx, config, sources: loaded.sources, clock, log, notifier, signal: stop.signal, secrets });
  if (!identity) return stopRequests > 0 ? EXIT.ok : EXIT.failure;

  const transport = await createCloudTransport(config, clock, ctx.version, identity.caCertPem ?? null);
  const cloud = createCloudClient({
    apiUrl: config.cloud.api_url,
    generation: config.cloud.api_generation === 'auto' && identity.generation ? identity.generation : config.cloud.api_generation,
    uuid: identity.uuid,
    apiKey: identity.apiKey,
    transport,
    log,
    now: () => clock.now(),
  });
  const random = Math.random;
  agent = new Agent({
    clock,
    log,
    cloud,
    scheduler: createPollScheduler({
      intervalMs: config.polling.interval,
      jitter: config.polling.jitter,
      maxBackoffMs: config.polling.max_backoff,
      random,
    }),
    deliveryRetry: createRetryBackoff({ maxBackoffMs: config.polling.max_backoff, random }),
    journal,
    outbox,
    history,
    engine: createEngine({ jobs: config.jobs, agentVersion: ctx.version, clock, log, lookupUser: lookupUserLazily, agentUid: ctx.uid }),
    notifier,
    writeStatus: (status) => writeRuntimeStatus(config.agent.runtime_dir, status),
    version: ctx.version,
    identitySource: identity.description,
    pid: ctx.pid,
    disabledReason: loaded.disabledReason,
    pollIntervalMs: config.polling.interval,
    requestTimeoutMs: config.cloud.request_timeout,
    progressIntervalMs: config.jobs.progress_interval,
    drainTimeoutMs: config.agent.drain_timeout,
    flushTimeoutMs: FLUSH_TIMEOUT_MS,
    reclaimMemory: createMemoryReclaimer(sender, log),
  });
  if (stop.signal.aborted) agent.stop();

  const watchdogStop = new AbortController();
  const watchdogMs = parseWatchdogInterval(ctx.env.WATCHDOG_USEC, ctx.env.WATCHDOG_PID, ctx.pid);
  const running = agent;
  const watchdog = watchdogMs
    ? createWatchdog({
        intervalMs: watchdogMs,
        clock: createSystemClock(),
        isHealthy: () => running.isHealthy(),
        notifier: {
          watchdog: () => {
            notifier.watchdog();
            notifier.status(running.describe());
          },
        },
        signal: watchdogStop.signal,
        log,
      })
    : null;

  log.info(
    `cloudjobs ${ctx.version} started: polling ${config.cloud.api_url} every ${Math.round(config.polling.interval / 100) / 10}s as device ${identity.uuid} (${identity.description})`,
  );
  try {
    await agent.run();
  } finally {
    watchdogStop.abort();
    await watchdog?.done;
    transport.close();
    await removeRuntimeStatus(config.agent.runtime_dir).catch((error: unknown) =>
      log.debug(`could not remove the status file: ${describeError(error)}`),
    );
  }
  log.info('cloudjobs stopped');
  return EXIT.ok;
}

// After a job: a full collection, then the C heap's free pages back to the system (the native helper).
function createMemoryReclaimer(sender: DatagramSender | null, log: Log): (() => void) | undefined {
  const collect = createFullCollector();
  const trimHeap = sender?.trimHeap ?? null;
  if (!collect && !trimHeap) return undefined;
  return () => {
    const before = process.memoryUsage.rss();
    collect?.();
    trimHeap?.();
    const mib = (bytes: number): string => `${Math.round(bytes / 1048576)} MiB`;
    log.debug(`memory reclaimed after a job: resident ${mib(before)} -> ${mib(process.memoryUsage.rss())}`);
  };
}

// users.ts brings execa: load it with the first job, not at start.
async function lookupUserLazily(name: string) {
  const { lookupUser } = await import('../jobs/users.js');
  return lookupUser(name);
}

// CLOUDJOBS_TEST_TIME_SCALE (tests only) plays waits N times faster, so minutes of backoff take seconds.
function createClock(ctx: CliContext): Clock {
  const scale = Number(ctx.env.CLOUDJOBS_TEST_TIME_SCALE ?? '1');
  return Number.isFinite(scale) && scale > 1 ? createScaledClock(scale) : createSystemClock();
}
