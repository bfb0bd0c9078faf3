// Asks the system to reboot, for a job that requested it: runs
// [jobs] reboot_command (default `systemctl reboot`: an orderly reboot through
// systemd/logind, which stops this agent with SIGTERM first; never an
// immediate reboot(2)). Tests replace the command with a fake.
import { execFile } from 'node:child_process';

/** What runRebootCommand needs. */
export interface RebootCommandOptions {
  /** argv of the command (already split; no shell). */
  argv: readonly string[];
  /** How long the command may take before it counts as failed. */
  timeoutMs: number;
}

// Output kept for the failure message.
const MAX_OUTPUT_BYTES = 16 * 1024;
const MAX_MESSAGE_CHARS = 500;

/** Runs the reboot command; resolves when it exited 0, rejects with a sentence naming the command and what went wrong. */
export function runRebootCommand(options: RebootCommandOptions): Promise<void> {
  const [file, ...args] = options.argv;
  const shown = options.argv.join(' ');
  if (file === undefined) return Promise.reject(new Error('jobs.reboot_command is empty'));
  return new Promise((resolve, reject) => {
    execFile(
      file,
      args,
      { timeout: options.timeoutMs, killSignal: 'SIGKILL', maxBuffer: MAX_OUTPUT_BYTES, windowsHide: true },
      (error, _stdout, stderr) => {
        if (!error) {
          resolve();
          return;
        }
        const text = String(stderr).trim().slice(0, MAX_MESSAGE_CHARS);
        const code = (error as { code?: unknown }).code;
        const signal = (error as { signal?: unknown }).signal;
        let what: string;
        if (typeof code === 'string') what = `could not start (${code})`;
        else if (typeof code === 'number') what = `exited with code ${code}`;
        else if (typeof signal === 'string') what = `was killed by ${signal} (time limit ${formatLimit(options.timeoutMs)})`;
        else what = `failed (${error.message})`;
        reject(new Error(`\`${shown}\` ${what}${text === '' ? '' : `: ${text}`}`));
      },
    );
  });
}

function formatLimit(ms: number): string {
  return ms < 1000 ? `${ms}ms` : `${Math.round(ms / 1000)}s`;
}
