import { describe, expect, it } from 'vitest';
import { checkNativeHelper, describeNoReady, EXIT_NO_READY } from '../../../src/cli/native-preflight.js';
import type { DatagramSender } from '../../../src/service/native.js';
import { createCaptureLog } from '../cloud/capture-log.js';

const sender: DatagramSender = { send: () => undefined, trimHeap: null };
const FAILURE = '/run/cloudjobs is on /run, which is mounted noexec, so the embedded addon cannot be loaded from there; install the package';

function check(native: Parameters<typeof checkNativeHelper>[0], notifySocket: string | undefined) {
  const log = createCaptureLog();
  const exit = checkNativeHelper(native, notifySocket, log);
  return { exit, logged: log.entries.map((e) => `${e.level}: ${e.message}`) };
}

describe('checkNativeHelper', () => {
  it('goes on silently when the helper loaded, under systemd or not', () => {
    expect(check({ sender, failure: null }, '/run/systemd/notify')).toEqual({ exit: null, logged: [] });
    expect(check({ sender, failure: null }, undefined)).toEqual({ exit: null, logged: [] });
  });

  it('under systemd (NOTIFY_SOCKET a path or @name) without the helper: stops with 69 and one error saying what, why, what to do', () => {
    for (const socket of ['/run/systemd/notify', '@sd-notify']) {
      expect(check({ sender: null, failure: FAILURE }, socket)).toEqual({ exit: 69, logged: [`error: ${describeNoReady(FAILURE)}`] });
    }
    expect(EXIT_NO_READY).toBe(69);
    expect(describeNoReady(FAILURE)).toBe(
      `cannot start under systemd: the native helper that sends READY=1 to systemd is not loaded: ${FAILURE}. ` +
        'Without it systemd would wait for READY=1 until TimeoutStartSec, kill the agent and start it again, ' +
        'so the agent stops now with exit status 69 (EX_UNAVAILABLE), which cloudjobs.service does not restart. ' +
        'Fix the cause above (see TROUBLESHOOTING in cloudjobs(1)), then run: sudo systemctl restart cloudjobs',
    );
  });

  it('under systemd with a build that has no helper at all (from source): stops with 69 too', () => {
    const { exit, logged } = check(null, '/run/systemd/notify');
    expect(exit).toBe(69);
    expect(logged).toEqual([`error: ${describeNoReady('this build has no native helper (running from source, not the built executable)')}`]);
  });

  it('outside systemd: one warning (or a debug line from source) and the agent goes on', () => {
    expect(check({ sender: null, failure: FAILURE }, undefined)).toEqual({
      exit: null,
      logged: [`warn: native datagram addon not loaded: ${FAILURE}; running without systemd notify and journald fields`],
    });
    // a NOTIFY_SOCKET sd_notify would not use is not systemd (createNotifier warns about it)
    expect(check({ sender: null, failure: FAILURE }, 'relative').exit).toBeNull();
    expect(check(null, '')).toEqual({
      exit: null,
      logged: ['debug: this build has no native helper (running from source, not the built executable): systemd notify and journald fields are off'],
    });
  });
});
