// [metrics] textfile: the metrics in a *.prom file for node_exporter's
// textfile collector. The SD card decides the rules: the file is replaced
// (temp file and rename: node_exporter never reads half a file) only when a
// value that matters changed (AgentMetrics.significantKey: not the idle poll
// counters), and otherwise at most every TEXTFILE_REFRESH_MS so that
// node_textfile_mtime_seconds tells a live agent from a dead one.
import type { Clock } from '../clock/clock.js';
import { describeError } from '../errors/errors.js';
import type { Log } from '../log/log.js';
import { writeFileAtomic } from '../state/atomic-file.js';

/** An unchanged file is rewritten this often at most (and at least, while the agent lives). */
export const TEXTFILE_REFRESH_MS = 10 * 60_000;
// node_exporter runs as its own user: the file must be world-readable
const TEXTFILE_MODE = 0o644;

/** Keeps the textfile current. */
export interface TextfileWriter {
  /** Writes when the key changed (or the refresh is due); writes never overlap and the last one lands. */
  update(key: string, render: () => string): void;
  /** Resolves when no write is in flight. */
  idle(): Promise<void>;
}

/** Creates the writer for `path`. */
export function createTextfileWriter(options: { path: string; clock: Clock; log: Log }): TextfileWriter {
  const { path, clock, log } = options;
  let writtenKey: string | null = null;
  let writtenAt = 0;
  let pending: (() => string) | null = null;
  let writing: Promise<void> | null = null;
  let failing = false;

  const drain = async (): Promise<void> => {
    while (pending) {
      const render = pending;
      pending = null;
      try {
        // not fsynced: a lost write after a power cut is rewritten by the next change
        await writeFileAtomic(path, render(), { mode: TEXTFILE_MODE, durable: false });
        if (failing) log.info(`the metrics textfile ${path} is written again`);
        failing = false;
      } catch (error) {
        if (!failing) log.error(`could not write the metrics textfile: ${describeError(error)}; trying again at the next change`, { path });
        failing = true;
        writtenKey = null;
      }
    }
  };

  return {
    update(key, render) {
      // elapsed time: an NTP step must neither hold the refresh back nor force a rewrite
      const now = clock.monotonic();
      if (key === writtenKey && now - writtenAt < TEXTFILE_REFRESH_MS) return;
      writtenKey = key;
      writtenAt = now;
      pending = render;
      writing ??= drain().finally(() => {
        writing = null;
      });
    },
    async idle() {
      while (writing) await writing;
    },
  };
}
