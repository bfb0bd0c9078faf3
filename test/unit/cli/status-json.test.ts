// `cloudjobs status --json` is the agent's AgentStatus: a complete object of that type
// conforms to test/status.schema.json, and the schema refuses what the type would not allow.
import { describe, expect, it } from 'vitest';
import { formatStatus, type StatusFile } from '../../../src/cli/status-command.js';
import { checkStatusJson } from '../../status-schema.js';

// Required<>: every optional field too, so a field added to AgentStatus (or the status file) must be added here (and to the schema)
const FULL: Required<StatusFile> & { version: 1 } = {
  version: 1,
  agentVersion: '0.2.0',
  pid: 4242,
  state: 'held',
  degraded: null,
  polling: true,
  disabledReason: null,
  identitySource: 'config',
  generation: 'devices',
  currentJob: { jobId: 'j1', jobName: 'update', step: 'apt', stepIndex: 1, stepCount: 2, startedAt: 1000, reboots: 0 },
  lastPoll: { at: 900, outcome: 'no job' },
  nextPollAt: null,
  outbox: { count: 1, bytes: 200, oldestAgeSeconds: 3 },
  reports: { delivered: 4, refused: 0, retried: 1, cut: 0 },
  updatedAt: 1100,
  push: { state: 'connected', broker: 'mqtts://b:8883', since: 10, lastNotificationAt: null, notifications: 0, lastError: null },
  describe: 'held by kiosk-app: customer session; taking no new job',
  hold: {
    held: true,
    reason: 'held by kiosk-app: customer session',
    operator: null,
    applications: [{ name: 'kiosk-app', reason: 'customer session' }],
    staleApplicationFiles: ['dead-app'],
    maintenanceWindows: ['Mon-Fri 22:00-02:00'],
    inMaintenanceWindow: false,
    nextWindowAt: 5000,
  },
  signatures: { required: true, trustedKeyIds: ['0a1b2c3d4e5f6071'], trustedKeysDir: '/etc/cloudjobs/trusted-keys.d' },
  limits: { defaultTimeoutMs: 3_600_000, maxOutputBytes: 65_536, maxParallel: 4, maxReboots: 3, killGraceMs: 10_000, drainTimeoutMs: 300_000 },
};

describe('status --json schema', () => {
  it('a complete AgentStatus conforms', () => {
    expect(checkStatusJson(FULL)).toEqual([]);
    expect(checkStatusJson({ ...FULL, hold: null, limits: null, push: null, currentJob: null, lastPoll: null })).toEqual([]);
  });

  it('refuses a missing field, an unknown field and a wrong state', () => {
    const { hold: _hold, ...withoutHold } = FULL;
    expect(checkStatusJson(withoutHold).join('\n')).toMatch(/must have required property 'hold'/);
    expect(checkStatusJson({ ...FULL, surprise: 1 }).join('\n')).toMatch(/must NOT have additional properties/);
    expect(checkStatusJson({ ...FULL, state: 'sleeping' }).join('\n')).toMatch(/\/state must be equal to one of the allowed values/);
  });

  it('the terminal form says why jobs are held and when the next window opens', () => {
    const text = formatStatus(FULL, 2000);
    expect(text).toContain('jobs held:      held by kiosk-app: customer session');
    expect(text).toContain('app holds:      kiosk-app (customer session)');
    expect(text).toContain(`windows:        Mon-Fri 22:00-02:00 (outside, next opens ${new Date(5000).toISOString()})`);
  });
});
