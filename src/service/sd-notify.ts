// systemd's notify protocol (sd_notify(3)) over the native datagram sender:
// READY=1, STATUS=..., WATCHDOG=1, STOPPING=1, EXTEND_TIMEOUT_USEC=... to $NOTIFY_SOCKET. Outside
// systemd (no socket) every call is a silent no-op; a failing send logs one
// warning and never throws, because the agent must keep working without it.
import type { Log } from '../log/log.js';
import type { DatagramSender } from './native.js';

/** What the agent tells systemd about itself. */
export interface Notifier {
  /** True when messages actually go to systemd (socket and sender present). */
  readonly enabled: boolean;
  /** READY=1: configuration loaded and state recovered. */
  ready(): void;
  /** STATUS=<text> for `systemctl status`; sent only when the text changed. */
  status(text: string): void;
  /** WATCHDOG=1: the health check passed. */
  watchdog(): void;
  /** STOPPING=1: shutdown has begun. */
  stopping(): void;
  /** EXTEND_TIMEOUT_USEC=: the current start/stop may take `ms` more than the unit's timeout (systemd 236+). */
  extendTimeout(ms: number): void;
}

/** Inputs of createNotifier; main.ts passes $NOTIFY_SOCKET and the native sender. */
export interface NotifierOptions {
  /** $NOTIFY_SOCKET: an absolute path or an abstract name starting with '@'; undefined outside systemd. */
  socketPath: string | undefined;
  /** The native datagram sender, or null when the addon could not be loaded. */
  sender: DatagramSender | null;
  log: Log;
}

// systemd truncates nothing but a STATUS longer than this is useless in `systemctl status`.
const MAX_STATUS_CHARS = 200;

/** Builds the Notifier for this process from $NOTIFY_SOCKET and the native sender. */
export function createNotifier(options: NotifierOptions): Notifier {
  const { socketPath, sender, log } = options;
  const usable = isNotifySocketPath(socketPath);
  if (socketPath !== undefined && socketPath !== '' && !usable) {
    log.warn(`NOTIFY_SOCKET is neither an absolute path nor an abstract @name; systemd notifications disabled`, {
      notifySocket: socketPath,
    });
  }
  if (usable && sender === null) {
    log.warn(
      'running under systemd (NOTIFY_SOCKET is set) but the native helper is not loaded: ' +
        'READY, STATUS and WATCHDOG cannot be sent, so systemd will time out the start',
    );
  }
  const enabled = usable && sender !== null;
  let lastStatus: string | undefined;
  let failing = false;

  const send = (message: string): boolean => {
    if (!enabled || sender === null || socketPath === undefined) return false;
    try {
      sender.send(socketPath, Buffer.from(message, 'utf8'));
      failing = false;
      return true;
    } catch (error) {
      if (!failing) {
        log.warn(`could not notify systemd (${firstLine(message)}): ${describe(error)}; will keep trying silently`, {
          notifySocket: socketPath,
        });
      }
      failing = true;
      return false;
    }
  };

  return {
    enabled,
    ready: () => void send('READY=1'),
    watchdog: () => void send('WATCHDOG=1'),
    stopping: () => void send('STOPPING=1'),
    extendTimeout: (ms) => void send(`EXTEND_TIMEOUT_USEC=${Math.max(1, Math.ceil(ms)) * 1000}`),
    status(text) {
      const line = formatStatus(text);
      if (line === lastStatus) return;
      if (send(`STATUS=${line}`)) lastStatus = line;
    },
  };
}

/** Makes a STATUS text one bounded line (systemd reads one line per assignment). */
export function formatStatus(text: string): string {
  const line = text.replace(/[\r\n]+/g, ' ').trim();
  return line.length > MAX_STATUS_CHARS ? `${line.slice(0, MAX_STATUS_CHARS - 1)}…` : line;
}

/** Tells whether a $NOTIFY_SOCKET value names a socket sd_notify would use. */
export function isNotifySocketPath(value: string | undefined): value is string {
  return value !== undefined && value.length > 1 && (value.startsWith('/') || value.startsWith('@'));
}

function firstLine(message: string): string {
  return message.split('\n', 1)[0] ?? '';
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
