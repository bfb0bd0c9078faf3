// systemd's own view of the agent, as root's word for why it stops: the unit
// the agent runs in (the kernel's /proc/self/cgroup, not anything a process
// says about itself) and the job systemd has queued for that unit
// (`systemctl list-jobs`: a restart can only be queued by root). See
// agent/stop-cause.ts and README "What the agent believes".
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';

/** systemd's job queued for a unit, e.g. { id: 812, type: 'restart' }. */
export interface UnitJob {
  id: number;
  type: string;
}

/** Where systemctl is looked for: root's own directories only, never PATH. */
export const SYSTEMCTL_PATHS = ['/usr/bin/systemctl', '/bin/systemctl'] as const;

const MAX_OUTPUT_BYTES = 64 * 1024;
const UNIT_NAME = /^[A-Za-z0-9:_.\\@-]{1,250}\.service$/;

/** The .service unit whose cgroup holds this process, from /proc/self/cgroup text; null when none. */
export function parseOwnUnit(cgroupText: string): string | null {
  // cgroup v2 ("0::/system.slice/x.service") first, then the v1 systemd hierarchy ("1:name=systemd:/...")
  const lines = cgroupText.split('\n').slice(0, 64);
  const preferred = [...lines.filter((l) => l.startsWith('0::')), ...lines.filter((l) => l.includes(':name=systemd:'))];
  for (const line of preferred) {
    const path = line.slice(line.indexOf(':', line.indexOf(':') + 1) + 1);
    const unit = path.split('/').filter((part) => part !== '').find((part) => UNIT_NAME.test(part));
    if (unit !== undefined) return unit;
  }
  return null;
}

/** Reads the agent's own unit; null outside a systemd service. */
export async function readOwnUnit(procRoot = '/proc'): Promise<string | null> {
  const text = await readFile(`${procRoot}/self/cgroup`, 'utf8').catch(() => null);
  return text === null ? null : parseOwnUnit(text.slice(0, MAX_OUTPUT_BYTES));
}

/** The job for `unit` in `systemctl list-jobs --no-legend --plain` output; null when none. */
export function parseUnitJob(listJobsText: string, unit: string): UnitJob | null {
  for (const line of listJobsText.split('\n').slice(0, 10_000)) {
    const [id, name, type] = line.trim().split(/\s+/);
    if (name === unit && /^\d{1,10}$/.test(id ?? '') && /^[a-z-]{1,32}$/.test(type ?? '')) return { id: Number(id), type: type as string };
  }
  return null;
}

/** What queryUnitJob needs. */
export interface UnitJobQuery {
  unit: string;
  /** The systemctl to run (an absolute path owned by root). */
  systemctl: string;
  timeoutMs: number;
}

/** Asks systemd for the job queued for `unit`; rejects with a sentence when systemctl fails. */
export function queryUnitJob(query: UnitJobQuery): Promise<UnitJob | null> {
  const args = ['list-jobs', '--no-legend', '--no-pager', '--plain', '--full', query.unit];
  return new Promise((resolve, reject) => {
    execFile(
      query.systemctl,
      args,
      { timeout: query.timeoutMs, killSignal: 'SIGKILL', maxBuffer: MAX_OUTPUT_BYTES, windowsHide: true, env: { LANG: 'C', SYSTEMD_COLORS: '0' } },
      (error, stdout, stderr) => {
        if (error) {
          const text = String(stderr).trim().slice(0, 300);
          reject(new Error(`\`${query.systemctl} ${args.join(' ')}\` failed: ${error.message.split('\n')[0]}${text === '' ? '' : `: ${text}`}`));
          return;
        }
        resolve(parseUnitJob(String(stdout), query.unit));
      },
    );
  });
}
