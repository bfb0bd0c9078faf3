// Starts what [metrics] asks for: the /metrics endpoint, the textfile, both or
// neither. `cloudjobs run` loads this module with import() only when one of
// them is configured, so an agent without metrics carries none of it.
import type { AgentObserver } from '../agent/ports.js';
import type { AgentStatus } from '../agent/status.js';
import type { Clock } from '../clock/clock.js';
import { parseListenAddress } from '../config/listen-address.js';
import type { Config } from '../config/schema.js';
import { describeError } from '../errors/errors.js';
import type { Log } from '../log/log.js';
import { createAgentMetrics, type MetricStatus } from './agent-metrics.js';
import { startMetricsServer, type MetricsServer } from './metrics-server.js';
import { createTextfileWriter } from './textfile.js';

/** Running metrics: the agent's observer, the status hook, and close. */
export interface MetricsSetup {
  observer: AgentObserver;
  /** The agent wrote its status: gauges may have changed. */
  statusChanged(status: MetricStatus): void;
  close(): Promise<void>;
}

/** Inputs of startMetrics. */
export interface StartMetricsOptions {
  config: Config['metrics'];
  version: string;
  runtime: string;
  clock: Clock;
  log: Log;
  /** The agent's status now (for a scrape); null before the agent exists. */
  status(): MetricStatus | null;
}

/** Starts the endpoint (a listen failure is logged, the agent runs on) and the textfile writer. */
export async function startMetrics(options: StartMetricsOptions): Promise<MetricsSetup> {
  const { config, clock, log } = options;
  const metrics = createAgentMetrics({ version: options.version, runtime: options.runtime });
  const textfile = config.textfile ? createTextfileWriter({ path: config.textfile, clock, log }) : null;
  let lastStatus: MetricStatus | null = null;
  const touch = (): void => textfile?.update(metrics.significantKey(lastStatus), () => metrics.render(lastStatus));
  let server: MetricsServer | null = null;
  const address = parseListenAddress(config.listen);
  if (address.ok && address.value) {
    try {
      server = await startMetricsServer(address.value, () => metrics.render(options.status() ?? lastStatus));
      log.info(`serving metrics at http://${config.listen}/metrics`);
    } catch (error) {
      log.error(`cannot serve metrics on ${config.listen}: ${describeError(error)}; the agent runs on without the endpoint`);
    }
  }
  if (textfile) log.info(`writing metrics to ${config.textfile} when they change`);
  return {
    observer: {
      polled(poll) {
        metrics.polled(poll);
        touch();
      },
      jobFinished(status, durationMs) {
        metrics.jobFinished(status, durationMs);
        touch();
      },
    },
    statusChanged(status) {
      lastStatus = status;
      touch();
    },
    async close() {
      await server?.close();
      await textfile?.idle();
    },
  };
}
