import { describe, expect, it } from 'vitest';
import { parseRebootCommand } from '../../../src/cli/reboot-command-config.js';
import { ConfigError } from '../../../src/errors/errors.js';

describe('parseRebootCommand', () => {
  it('splits the command into words', async () => {
    expect(await parseRebootCommand({ reboot_command: 'systemctl reboot' })).toEqual(['systemctl', 'reboot']);
    expect(await parseRebootCommand({ reboot_command: "/usr/local/bin/fake 'two words'" })).toEqual(['/usr/local/bin/fake', 'two words']);
  });

  it('refuses shell syntax with exit 78, naming the key', async () => {
    const error = await parseRebootCommand({ reboot_command: 'sync; reboot' }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).message).toBe(
      'invalid configuration (1 problem):\n  jobs.reboot_command: expected a command and its arguments without shell syntax, e.g. systemctl reboot, ' +
        'got "sync; reboot" (it uses shell syntax (;) but runs without a shell; set input.shell to true to run it with /bin/sh -c, or quote or escape it to pass it on literally)',
    );
  });
});
