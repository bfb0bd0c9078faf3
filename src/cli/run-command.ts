// `cloudjobs run`: builds the agent from the configuration and runs it until
// SIGTERM/SIGINT (what systemd starts). Exit 0 after a clean drain, 78 on a
// configuration error so systemd does not restart into the same error.
import { Agent } from '../agent/agent.js';
import type { AgentDeps } from '../agent/ports.js';
import { EXIT_LOOP_DIED } from '../agent/loop-watch.js';
import { createJobGate, watchDirectory, type JobGate } from '../agent/job-gate.js';
import { limitsFromConfig } from '../agent/job-limits.js';
import { parseMaintenanceWindows } from '../config/maintenance-windows.js';
import type { Config } from '../config/schema.js';
import { createBootClock } from '../state/hold-store.js';
import { readLockedFiles } from '../state/proc-locks.js';
import { createEngine } from '../agent/engine-adapter.js';
import { createScaledClock, createSystemClock, type Clock } from '../clock/clock.js';
import { createPollScheduler, createRetryBackoff } from '../cloud/backoff.js';
import { createCloudClient } from '../cloud/client.js';
import { describeError, LoopDiedError } from '../errors/errors.js';
import { createConsoleTransport, createLog, type Log } from '../log/log.js';
import { createWatchdog, parseWatchdogInterval } from '../service/health.js';
import { createFullCollector } from '../service/memory.js';
import type { DatagramSender } from '../service/native.js';
import { runRebootCommand } from '../service/reboot-command.js';
import { createNotifier } from '../service/sd-notify.js';
import { readBootIdentity } from '../state/boot-identity.js';
import { openHistory } from '../state/history.js';
import { openJournal } from '../state/journal.js';
import { openOutbox } from '../state/outbox.js';
import { readSelfUpdateOutcome, removeSelfUpdateOutcome } from '../state/self-update-outcome.js';
import { removeRuntimeStatus, writeRuntimeStatus } from '../state/runtime-status.js';
import { checkStateDir, probeStateDir } from '../state/state-dir-check.js';
import type { Command } from './args.js';
import { EXIT, type CliContext } from './context.js';
import { obtainIdentity } from './obtain-identity.js';
import { preparePush, withPushInterval } from './push-setup.js';
import { parseRebootCommand } from './reboot-command-config.js';
import { checkNativeHelper } from './native-preflight.js';
import { createStopCauseReader } from './stop-cause-reader.js';
import { createCliLog, createCloudTransport, loadCliConfig, loadNative } from './setup.js';
import { createVerifierFromConfig, loadConfiguredKeys, signatureStatus } from './signing-setup.js';
import { formatSignatures } from './status-command.js';
import { withTestLoopDeath } from './test-loop-death.js';

type RunCommand = Extract<Command, { name: 'run' }>;

// Shutdown spends at most this long sending queued reports; the rest waits on disk.
const FLUSH_TIMEOUT_MS = 5000;
// jobs.reboot_command must return within this (systemctl reboot only queues the reboot).
const REBOOT_COMMAND_TIMEOUT_MS = 60_000;

/** Runs the agent in the foreground. */
export async function runAgentCommand(ctx: CliContext, command: RunCommand): Promise<number> {
  ctx.setTitle('cloudjobs run');
  const loaded = loadCliConfig(ctx, command, { requireApiUrl: true });
  const { config } = loaded;
  const clock = createClock(ctx);
  const secrets: string[] = [];
  if (config.cloud.api_key) secrets.push(config.cloud.api_key);

  const rebootArgv = await parseRebootCommand(config.jobs);
  // an unsafe trusted key fails the start (78) before anything else happens
  const trustedKeys = await loadConfiguredKeys(config);
  const native = loadNative(ctx, config.agent.runtime_dir);
  const sender = native?.sender ?? null;
  const { log } = createCliLog(ctx, { level: config.logging.level, sender, secrets: () => secrets });
  for (const warning of loaded.warnings) log.warn(warning);
  const noReady = checkNativeHelper(native, ctx.env.NOTIFY_SOCKET, log);
  if (noReady !== null) return noReady;
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
  const verifier = createVerifierFromConfig(config, trustedKeys, { deviceUuid: identity.uuid, log, clock });
  const signatures = signatureStatus(verifier);
  log.info(`job signatures: ${formatSignatures(signatures)}`);
  const random = Math.random;
  const generation = config.cloud.api_generation === 'auto' ? identity.generation : config.cloud.api_generation;
  // with jobs disabled nothing would be polled for: no broker connection either
  const push = loaded.disabledReason ? null : await preparePush({ config, identity: { ...identity, generation }, clock, log, random, secrets });
  const pollScheduler = createPollScheduler({
    intervalMs: config.polling.interval,
    jitter: config.polling.jitter,
    maxBackoffMs: config.polling.max_backoff,
    random,
  });
  // loaded only when configured: an agent without metrics carries none of their code
  const metrics =
    config.metrics.listen || config.metrics.textfile
      ? await (await import('../metrics/start-metrics.js')).startMetrics({
          config: config.metrics,
          version: ctx.version,
          runtime: ctx.runtime,
          clock,
          log,
          status: () => agent?.getStatus() ?? null,
        })
      : null;
  const jobGate = createGate(config, clock, log);
  const deps: AgentDeps = {
    clock,
    log,
    cloud,
    scheduler: push
      ? withPushInterval(pollScheduler, push, { whenConnectedMs: config.mqtt.poll_interval_when_connected, jitter: config.polling.jitter, random })
      : pollScheduler,
    deliveryRetry: createRetryBackoff({ maxBackoffMs: config.polling.max_backoff, random }),
    journal,
    outbox,
    history,
    engine: createEngine({ jobs: config.jobs, agentVersion: ctx.version, clock, log, lookupUser: lookupUserLazily, agentUid: ctx.uid, verifier, ownsJobUnits: true }),
    reboot: {
      currentBoot: () => readBootIdentity({ bootIdFile: config.agent.boot_id_file, runtimeDir: config.agent.runtime_dir }),
      requestReboot: () => runRebootCommand({ argv: rebootArgv, timeoutMs: REBOOT_COMMAND_TIMEOUT_MS }),
      maxReboots: config.jobs.max_reboots,
      rebootUsers: config.jobs.reboot_users,
      rebootTimeoutMs: config.jobs.reboot_timeout,
      commandText: rebootArgv.join(' '),
    },
    notifier,
    writeStatus: (status) => {
      metrics?.statusChanged(status);
      return writeRuntimeStatus(config.agent.runtime_dir, { ...status, signatures });
    },
    jobGate,
    limits: limitsFromConfig(config),
    ...(metrics ? { observer: metrics.observer } : {}),
    version: ctx.version,
    identitySource: identity.description,
    pid: ctx.pid,
    disabledReason: loaded.disabledReason,
    // the health check never depends on the broker: it allows the longer of the two intervals
    longestPollWaitMs: Math.max(config.polling.interval, push ? (config.mqtt.poll_interval_when_connected ?? 0) : 0),
    // a held or degraded agent asks again at the plain interval, whatever push does to polling
    recheckIntervalMs: config.polling.interval,
    requestTimeoutMs: config.cloud.request_timeout,
    progressIntervalMs: config.jobs.progress_interval,
    drainTimeoutMs: config.agent.drain_timeout,
    flushTimeoutMs: FLUSH_TIMEOUT_MS,
    // a step's kill ladder, the job's last sweep, the outbox flush, and a margin
    stopAllowanceMs: 2 * config.jobs.kill_grace + FLUSH_TIMEOUT_MS + 30_000,
    checkState: () => checkStateDir({ dir: config.agent.state_dir, useReserved: ctx.uid === 0 }),
    probeState: () => probeStateDir({ dir: config.agent.state_dir, useReserved: ctx.uid === 0 }),
    ...(push ? { pushStatus: () => push.status() } : {}),
    reclaimMemory: createMemoryReclaimer(sender, log),
    selfUpdate: {
      read: (jobId) => readSelfUpdateOutcome(config.agent.state_dir, jobId),
      remove: (jobId) => removeSelfUpdateOutcome(config.agent.state_dir, jobId),
    },
    // root's word only: systemd's job for the agent's unit (README "What the agent believes")
    stopCause: createStopCauseReader(),
  };
  agent = new Agent(ctx.testLoopDeath ? withTestLoopDeath(deps, ctx.testLoopDeath, clock) : deps);
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
  const pushAgent = agent;
  await jobGate.start(() => pushAgent.holdChanged());
  await push?.start({ wake: () => pushAgent.wake(), onChange: () => pushAgent.pushChanged() }).catch((error: unknown) => {
    log.error(`push notifications could not start: ${describeError(error)}; polling continues`, { pushState: 'off' });
  });
  try {
    await agent.run();
  } catch (error) {
    if (!(error instanceof LoopDiedError)) throw error;
    return EXIT_LOOP_DIED;
  } finally {
    await jobGate.close();
    await metrics?.close();
    await push?.close();
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

// The gate before each poll: the operator's hold, application holds, maintenance windows (validated at load).
function createGate(config: Config, clock: Clock, log: Log): JobGate {
  const windows = parseMaintenanceWindows(config.jobs.maintenance_windows);
  if (!windows.ok) throw new Error(`jobs.maintenance_windows passed the config check but does not parse: ${windows.entry}: ${windows.problem}`);
  return createJobGate({
    clock,
    log,
    stateDir: config.agent.state_dir,
    holdDir: config.jobs.hold_dir,
    windows: windows.windows,
    bootClock: createBootClock(config.agent.boot_id_file),
    readLocks: () => readLockedFiles(),
    watchDir: watchDirectory(log),
  });
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
