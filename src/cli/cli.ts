// Dispatches a command line to its command and turns errors into exit codes:
// 2 usage, 78 configuration, 1 anything else.
import { AgentError, ConfigError, UsageError, describeError } from '../errors/errors.js';
import { parseArgs } from './args.js';
import { EXIT, type CliContext } from './context.js';
import { HELP_TEXT } from './help.js';

// Each command's module loads when that command runs: `cloudjobs run` does not
// carry `exec` (the job engine and execa) or `register` (key generation) in memory.

/** Runs one command line; resolves with the exit code. */
export async function runCli(ctx: CliContext): Promise<number> {
  let command;
  try {
    command = parseArgs(ctx.argv);
  } catch (error) {
    if (error instanceof UsageError) {
      ctx.stderr.write(`cloudjobs: ${error.message}\n`);
      return EXIT.usage;
    }
    throw error;
  }
  try {
    switch (command.name) {
      case 'help':
        ctx.stdout.write(HELP_TEXT);
        return EXIT.ok;
      case 'version':
        ctx.stdout.write(`cloudjobs ${ctx.version} (${ctx.runtime})\n`);
        return EXIT.ok;
      case 'check-config':
        return await (await import('./check-config-command.js')).runCheckConfig(ctx, command);
      case 'status':
        return await (await import('./status-command.js')).runStatus(ctx, command);
      case 'history':
        return await (await import('./status-command.js')).runHistory(ctx, command);
      case 'hold':
        return await (await import('./hold-command.js')).runHold(ctx, command);
      case 'release':
        return await (await import('./hold-command.js')).runRelease(ctx, command);
      case 'exec':
        return await (await import('./exec-command.js')).runExec(ctx, command);
      case 'register':
        return await (await import('./register-command.js')).runRegister(ctx, command);
      case 'keygen':
        return await (await import('./signing-command.js')).runKeygen(ctx, command);
      case 'sign':
        return await (await import('./signing-command.js')).runSign(ctx, command);
      case 'verify':
        return await (await import('./signing-command.js')).runVerify(ctx, command);
      case 'run':
        return await (await import('./run-command.js')).runAgentCommand(ctx, command);
    }
  } catch (error) {
    if (error instanceof ConfigError) {
      ctx.stderr.write(`cloudjobs: ${error.message}\n`);
      return EXIT.config;
    }
    if (error instanceof UsageError) {
      ctx.stderr.write(`cloudjobs: ${error.message}\n`);
      return EXIT.usage;
    }
    if (error instanceof AgentError) {
      ctx.stderr.write(`cloudjobs: ${error.message}\n`);
      return EXIT.failure;
    }
    ctx.stderr.write(`cloudjobs: ${describeError(error)}\n`);
    return EXIT.failure;
  }
}
