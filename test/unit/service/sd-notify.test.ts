import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createNotifier, formatStatus, isNotifySocketPath } from '../../../src/service/sd-notify.js';
import type { Log, LogFields } from '../../../src/log/log.js';
import type { DatagramSender } from '../../../src/service/native.js';
import { createTestSender, startDatagramReceiver, type DatagramReceiver } from './datagram-helpers.js';

function recordingLog(): Log & { warnings: string[] } {
  const warnings: string[] = [];
  const log: Log & { warnings: string[] } = {
    warnings,
    error() {},
    warn: (message: string, _fields?: LogFields) => void warnings.push(message),
    info() {},
    debug() {},
    child: () => log,
  };
  return log;
}

describe('createNotifier over a real AF_UNIX datagram socket', () => {
  let receiver: DatagramReceiver;
  beforeEach(async () => {
    receiver = await startDatagramReceiver();
  });
  afterEach(async () => {
    await receiver.close();
  });

  it('sends READY=1, STATUS=, WATCHDOG=1 and STOPPING=1 as separate datagrams', async () => {
    const log = recordingLog();
    const notifier = createNotifier({ socketPath: receiver.path, sender: createTestSender(), log });
    expect(notifier.enabled).toBe(true);
    notifier.ready();
    notifier.status('idle, last poll 12s ago');
    notifier.watchdog();
    notifier.stopping();
    const got = [];
    for (let i = 0; i < 4; i += 1) got.push((await receiver.next()).toString('utf8'));
    expect(got).toEqual(['READY=1', 'STATUS=idle, last poll 12s ago', 'WATCHDOG=1', 'STOPPING=1']);
    expect(log.warnings).toEqual([]);
  });

  it('sends EXTEND_TIMEOUT_USEC in microseconds, rounding ms up', async () => {
    const notifier = createNotifier({ socketPath: receiver.path, sender: createTestSender(), log: recordingLog() });
    notifier.extendTimeout(3_600_000 + 90_000);
    notifier.extendTimeout(0.4);
    expect((await receiver.next()).toString('utf8')).toBe('EXTEND_TIMEOUT_USEC=3690000000');
    expect((await receiver.next()).toString('utf8')).toBe('EXTEND_TIMEOUT_USEC=1000');
  });

  it('sends STATUS only when the text changes', async () => {
    const sender = createTestSender();
    const notifier = createNotifier({ socketPath: receiver.path, sender, log: recordingLog() });
    notifier.status('idle');
    notifier.status('idle');
    notifier.status('running job Restart Redis (step 1/3)');
    notifier.status('running job Restart Redis (step 1/3)');
    notifier.status('idle');
    expect(sender.sent).toBe(3);
    const got = [];
    for (let i = 0; i < 3; i += 1) got.push((await receiver.next()).toString('utf8'));
    expect(got).toEqual(['STATUS=idle', 'STATUS=running job Restart Redis (step 1/3)', 'STATUS=idle']);
  });
});

describe('createNotifier without systemd', () => {
  it('is a silent no-op when NOTIFY_SOCKET is unset', () => {
    const sender = createTestSender();
    const log = recordingLog();
    const notifier = createNotifier({ socketPath: undefined, sender, log });
    notifier.ready();
    notifier.status('idle');
    notifier.watchdog();
    notifier.stopping();
    expect(notifier.enabled).toBe(false);
    expect(sender.sent).toBe(0);
    expect(log.warnings).toEqual([]);
  });

  it('warns once when the socket is set but the native helper is missing', () => {
    const log = recordingLog();
    const notifier = createNotifier({ socketPath: '/run/systemd/notify', sender: null, log });
    notifier.ready();
    notifier.watchdog();
    expect(notifier.enabled).toBe(false);
    expect(log.warnings).toEqual([
      'running under systemd (NOTIFY_SOCKET is set) but the native helper is not loaded: ' +
        'READY, STATUS and WATCHDOG cannot be sent, so systemd will time out the start',
    ]);
  });

  it('ignores a NOTIFY_SOCKET that is neither absolute nor abstract, with one warning', () => {
    const sender = createTestSender();
    const log = recordingLog();
    const notifier = createNotifier({ socketPath: 'relative/socket', sender, log });
    notifier.ready();
    expect(sender.sent).toBe(0);
    expect(log.warnings).toEqual([
      'NOTIFY_SOCKET is neither an absolute path nor an abstract @name; systemd notifications disabled',
    ]);
  });
});

describe('send failures', () => {
  it('logs one warning for a run of failures, never throws, and logs again after a recovery', () => {
    let fail = true;
    const sent: string[] = [];
    const sender: DatagramSender = {
      send(_path, data) {
        if (fail) throw new Error('connect: No such file or directory');
        sent.push(data.toString());
      },
    };
    const log = recordingLog();
    const notifier = createNotifier({ socketPath: '/run/systemd/notify', sender, log });
    expect(() => {
      notifier.ready();
      notifier.watchdog();
      notifier.status('idle');
    }).not.toThrow();
    expect(log.warnings).toEqual([
      'could not notify systemd (READY=1): connect: No such file or directory; will keep trying silently',
    ]);
    fail = false;
    notifier.status('idle');
    expect(sent).toEqual(['STATUS=idle']);
    fail = true;
    notifier.watchdog();
    expect(log.warnings).toHaveLength(2);
    expect(log.warnings[1]).toBe(
      'could not notify systemd (WATCHDOG=1): connect: No such file or directory; will keep trying silently',
    );
  });

  it('retries a STATUS whose send failed', () => {
    let fail = true;
    const sent: string[] = [];
    const sender: DatagramSender = {
      send(_path, data) {
        if (fail) throw new Error('EAGAIN');
        sent.push(data.toString());
      },
    };
    const notifier = createNotifier({ socketPath: '@notify', sender, log: recordingLog() });
    notifier.status('idle');
    fail = false;
    notifier.status('idle');
    expect(sent).toEqual(['STATUS=idle']);
  });
});

describe('formatStatus and isNotifySocketPath', () => {
  it('keeps STATUS to one bounded line', () => {
    expect(formatStatus('cloud unreachable,\nretry in 40s\n')).toBe('cloud unreachable, retry in 40s');
    const long = formatStatus('x'.repeat(500));
    expect(long).toHaveLength(200);
    expect(long.endsWith('…')).toBe(true);
  });

  it('accepts absolute paths and abstract names only', () => {
    expect(isNotifySocketPath('/run/systemd/notify')).toBe(true);
    expect(isNotifySocketPath('@/org/freedesktop/systemd1/notify')).toBe(true);
    expect(isNotifySocketPath('run/notify')).toBe(false);
    expect(isNotifySocketPath('@')).toBe(false);
    expect(isNotifySocketPath('')).toBe(false);
    expect(isNotifySocketPath(undefined)).toBe(false);
  });
});
