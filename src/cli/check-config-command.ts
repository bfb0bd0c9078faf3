// `cloudjobs check-config`: the effective configuration with secrets redacted
// and the identity source, or every problem (exit 78 via ConfigError).
import { createSystemClock } from '../clock/clock.js';
import { describeIdentitySource } from './obtain-identity.js';
import { detectLimitSupport } from '../jobs/job-unit.js';
import { ceilingFromConfig, describeLimits } from '../jobs/limits.js';
import { formatCheckConfig } from '../config/check.js';
import type { Command } from './args.js';
import { EXIT, type CliContext } from './context.js';
import { parseRebootCommand } from './reboot-command-config.js';
import { loadCliConfig } from './setup.js';
import { loadConfiguredKeys } from './signing-setup.js';

type CheckCommand = Extract<Command, { name: 'check-config' }>;

/** Prints the effective configuration; ConfigError propagates as exit 78. */
export async function runCheckConfig(ctx: CliContext, command: CheckCommand): Promise<number> {
  const loaded = loadCliConfig(ctx, command, { requireApiUrl: true });
  await parseRebootCommand(loaded.config.jobs);
  // the same trusted-key checks that fail `cloudjobs run`
  await loadConfiguredKeys(loaded.config);
  const identitySource = await describeIdentitySource(loaded.config, loaded.sources, createSystemClock());
  ctx.stdout.write(
    formatCheckConfig(loaded.config, {
      configFile: command.configFile,
      identitySource,
      warnings: loaded.warnings,
      sources: loaded.sources,
      disabledReason: loaded.disabledReason,
    }),
  );
  ctx.stdout.write(await describeLimitSupport(loaded.config.jobs, ctx.uid));
  return EXIT.ok;
}

/** Whether this system enforces [jobs] memory_max, tasks_max and cpu_quota, one line each (warnings, not errors). */
export async function describeLimitSupport(jobs: Parameters<typeof ceilingFromConfig>[0], uid: number): Promise<string> {
  const ceiling = ceilingFromConfig(jobs);
  const support = await detectLimitSupport(uid, ceiling);
  if (!support.enforced) return `resource limits: NOT enforced (${support.why}); jobs run without ${describeLimits(ceiling)}\n`;
  const gaps = support.gaps.map((gap) => `resource limits: ${gap}\n`).join('');
  return `resource limits: enforced (${describeLimits(ceiling)}) through systemd units under cloudjobs-jobs.slice\n${gaps}`;
}
