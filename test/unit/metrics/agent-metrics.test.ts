// The exposition text, the counters and gauges, and the textfile's write rule.
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createManualClock } from '../../../src/clock/clock.js';
import { createAgentMetrics, type MetricStatus } from '../../../src/metrics/agent-metrics.js';
import { escapeLabelValue, renderExposition } from '../../../src/metrics/exposition.js';
import { createTextfileWriter, TEXTFILE_REFRESH_MS } from '../../../src/metrics/textfile.js';
import { createRecordingLog, makeTempDir } from '../state/helpers.js';

const STATUS: MetricStatus = {
  outbox: { count: 2, bytes: 10, oldestAgeSeconds: 1 },
  degraded: null,
  push: { state: 'connected', broker: 'mqtt://b:1883', since: 0, lastNotificationAt: null, notifications: 0, lastError: null },
  hold: { held: true, reason: 'held by x', operator: null, applications: [], staleApplicationFiles: [], maintenanceWindows: [], inMaintenanceWindow: true, nextWindowAt: null },
  currentJob: null,
};

describe('renderExposition', () => {
  it('writes HELP, TYPE, labels and a cumulative histogram', () => {
    const text = renderExposition([
      { name: 'a_total', help: 'A\\b\nc', type: 'counter', samples: [{ labels: { k: 'v"\\\n' }, value: 3 }] },
      { name: 'h_seconds', help: 'H', type: 'histogram', buckets: [1, 5], counts: [2, 1], sum: 7.5, count: 4 },
    ]);
    expect(text).toBe(
      [
        '# HELP a_total A\\\\b\\nc',
        '# TYPE a_total counter',
        'a_total{k="v\\"\\\\\\n"} 3',
        '# HELP h_seconds H',
        '# TYPE h_seconds histogram',
        'h_seconds_bucket{le="1"} 2',
        'h_seconds_bucket{le="5"} 3',
        'h_seconds_bucket{le="+Inf"} 4',
        'h_seconds_sum 7.5',
        'h_seconds_count 4',
        '',
      ].join('\n'),
    );
    expect(escapeLabelValue('plain')).toBe('plain');
  });
});

describe('createAgentMetrics', () => {
  it('counts final statuses lowercase, durations, polls by outcome, and reads gauges from status', () => {
    const metrics = createAgentMetrics({ version: '1.2.3', runtime: 'node v24, linux-x64' });
    metrics.polled({ at: 5_000_500, outcome: 'no job' });
    metrics.polled({ at: 6_000_000, outcome: 'network' });
    metrics.jobFinished('SUCCEEDED', 2500);
    metrics.jobFinished('TIMED_OUT', 7_200_000);
    const text = metrics.render(STATUS);
    expect(text).toContain('cloudjobs_jobs_total{status="succeeded"} 1\n');
    expect(text).toContain('cloudjobs_jobs_total{status="timed_out"} 1\n');
    expect(text).toContain('cloudjobs_jobs_total{status="failed"} 0\n');
    expect(text).toContain('cloudjobs_job_duration_seconds_bucket{le="5"} 1\n');
    expect(text).toContain('cloudjobs_job_duration_seconds_bucket{le="3600"} 1\n');
    expect(text).toContain('cloudjobs_job_duration_seconds_bucket{le="14400"} 2\n');
    expect(text).toContain('cloudjobs_job_duration_seconds_sum 7202.5\n');
    expect(text).toContain('cloudjobs_polls_total{outcome="no_job"} 1\n');
    expect(text).toContain('cloudjobs_polls_total{outcome="network"} 1\n');
    expect(text).toContain('cloudjobs_last_poll_success_timestamp_seconds 5000\n');
    expect(text).toContain('cloudjobs_outbox_reports 2\n');
    expect(text).toContain('cloudjobs_degraded 0\n');
    expect(text).toContain('cloudjobs_push_connected 1\n');
    expect(text).toContain('cloudjobs_held 1\n');
    expect(text).toContain('cloudjobs_info{version="1.2.3",runtime="node v24, linux-x64"} 1\n');
  });

  it('the textfile key ignores idle polls but not a change of outcome, a job or a gauge', () => {
    const metrics = createAgentMetrics({ version: '1', runtime: 'r' });
    metrics.polled({ at: 1, outcome: 'no job' });
    const idle = metrics.significantKey(STATUS);
    metrics.polled({ at: 2, outcome: 'no job' });
    metrics.polled({ at: 3, outcome: 'job' });
    expect(metrics.significantKey(STATUS)).toBe(idle);
    metrics.polled({ at: 4, outcome: 'network' });
    expect(metrics.significantKey(STATUS)).not.toBe(idle);
    const failing = metrics.significantKey(STATUS);
    metrics.jobFinished('FAILED', 10);
    expect(metrics.significantKey(STATUS)).not.toBe(failing);
    expect(metrics.significantKey({ ...STATUS, degraded: 'disk full' })).not.toBe(metrics.significantKey(STATUS));
  });
});

describe('createTextfileWriter', () => {
  it('writes on a new key or after the refresh time, never for the same key in between', async () => {
    const dir = await makeTempDir();
    const path = join(dir, 'cloudjobs.prom');
    const clock = createManualClock(0);
    const writer = createTextfileWriter({ path, clock, log: createRecordingLog() });
    let renders = 0;
    const render = (): string => `x ${++renders}\n`;
    writer.update('a', render);
    await writer.idle();
    const first = await stat(path);
    expect(first.mode & 0o777).toBe(0o644);
    for (let i = 0; i < 5; i += 1) writer.update('a', render);
    await writer.idle();
    expect(renders).toBe(1);
    writer.update('b', render);
    await writer.idle();
    expect(await readFile(path, 'utf8')).toBe('x 2\n');
    // a wall clock stepped a year forward (NTP on a Pi without RTC) is no refresh
    clock.stepWall(365 * 86_400_000);
    writer.update('b', render);
    await writer.idle();
    expect(renders).toBe(2);
    await clock.advance(TEXTFILE_REFRESH_MS);
    writer.update('b', render);
    await writer.idle();
    expect(renders).toBe(3);
  });

  it('a failing write is logged once and tried again at the next update', async () => {
    const dir = await makeTempDir();
    const log = createRecordingLog();
    const writer = createTextfileWriter({ path: join(dir, 'missing', 'm.prom'), clock: createManualClock(0), log });
    writer.update('a', () => 'x\n');
    await writer.idle();
    writer.update('a', () => 'x\n');
    await writer.idle();
    expect(log.messages('error')).toHaveLength(1);
    expect(log.messages('error')[0]).toMatch(/could not write the metrics textfile/);
  });
});
