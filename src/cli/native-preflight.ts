// What `cloudjobs run` does when the native helper did not load. Outside
// systemd the agent works without it (no sd_notify, plain stderr lines): one
// warning. Under systemd (NOTIFY_SOCKET set) the unit is Type=notify and only
// the helper can send READY=1: an agent that started anyway would sit in
// "activating" until TimeoutStartSec, be killed, and be started again, with
// any running job killed each time. So it stops at once with a status the
// unit does not restart (RestartPreventExitStatus) and says what to do.
import type { Log } from '../log/log.js';
import type { NativeLoad } from '../service/native.js';
import { isNotifySocketPath } from '../service/sd-notify.js';
import { EXIT } from './context.js';

/** The exit status when READY=1 cannot be sent under systemd: 69 (EX_UNAVAILABLE). */
export const EXIT_NO_READY = EXIT.unavailable;

/**
 * Logs what a missing native helper means and returns the exit status to stop
 * with, or null to go on. `native` is null when the build has none at all
 * (running from source).
 */
export function checkNativeHelper(native: NativeLoad | null, notifySocket: string | undefined, log: Log): number | null {
  const failure = native === null ? 'this build has no native helper (running from source, not the built executable)' : native.failure;
  if (failure === null) return null;
  if (isNotifySocketPath(notifySocket)) {
    log.error(describeNoReady(failure));
    return EXIT_NO_READY;
  }
  if (native === null) log.debug(`${failure}: systemd notify and journald fields are off`);
  else log.warn(`native datagram addon not loaded: ${failure}; running without systemd notify and journald fields`);
  return null;
}

/** The one error line of a start under systemd without the helper: what, why, what to do. */
export function describeNoReady(failure: string): string {
  return (
    `cannot start under systemd: the native helper that sends READY=1 to systemd is not loaded: ${failure}. ` +
    'Without it systemd would wait for READY=1 until TimeoutStartSec, kill the agent and start it again, ' +
    `so the agent stops now with exit status ${EXIT_NO_READY} (EX_UNAVAILABLE), which cloudjobs.service does not restart. ` +
    'Fix the cause above (see TROUBLESHOOTING in cloudjobs(1)), then run: sudo systemctl restart cloudjobs'
  );
}
