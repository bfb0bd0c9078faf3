// [jobs] reboot_command is a command line without a shell: split here, where
// both `run` and `check-config` can refuse it with exit 78, not at the reboot.
import type { Config } from '../config/schema.js';
import { ConfigError } from '../errors/errors.js';

/** The argv of jobs.reboot_command; throws ConfigError naming the key when it does not split. */
export async function parseRebootCommand(jobs: Pick<Config['jobs'], 'reboot_command'>): Promise<string[]> {
  const { splitWords } = await import('../jobs/split-command.js');
  const split = splitWords(jobs.reboot_command);
  if (split.ok) return split.argv;
  throw new ConfigError([
    {
      key: 'jobs.reboot_command',
      expected: 'a command and its arguments without shell syntax, e.g. systemctl reboot',
      seen: JSON.stringify(jobs.reboot_command),
      hint: `it ${split.problem}`,
    },
  ]);
}
