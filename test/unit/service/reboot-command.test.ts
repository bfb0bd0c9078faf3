import { describe, expect, it } from 'vitest';
import { runRebootCommand } from '../../../src/service/reboot-command.js';

describe('runRebootCommand', () => {
  it('resolves when the command exits 0', async () => {
    await expect(runRebootCommand({ argv: ['/bin/true'], timeoutMs: 10_000 })).resolves.toBeUndefined();
  });

  it('names the command, its exit code and its stderr when it fails', async () => {
    await expect(
      runRebootCommand({ argv: ['/bin/sh', '-c', 'echo "Failed to connect to bus" >&2; exit 1'], timeoutMs: 10_000 }),
    ).rejects.toThrow('`/bin/sh -c echo "Failed to connect to bus" >&2; exit 1` exited with code 1: Failed to connect to bus');
  });

  it('says when the command does not exist', async () => {
    await expect(runRebootCommand({ argv: ['/nonexistent/systemctl', 'reboot'], timeoutMs: 10_000 })).rejects.toThrow(
      '`/nonexistent/systemctl reboot` could not start (ENOENT)',
    );
  });

  it('kills a command that hangs past its time limit', async () => {
    await expect(runRebootCommand({ argv: ['/bin/sleep', '30'], timeoutMs: 200 })).rejects.toThrow(
      '`/bin/sleep 30` was killed by SIGKILL (time limit 200ms)',
    );
  });
});
