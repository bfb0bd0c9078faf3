import { describe, expect, it } from 'vitest';
import { classifyPushFailure } from '../../../src/cloud/push-errors.js';
import {
  chooseIdleInterval,
  computeReconnectDelay,
  deriveTopics,
  encodeUuidTopicSegment,
  resolvePushSettings,
  type PushIdentity,
} from '../../../src/cloud/push-settings.js';
import { loadConfig } from '../../../src/config/load.js';
import { isLoopbackHost } from '../../../src/config/parse-value.js';
import { readMqttRegistration } from '../../../src/cloud/register.js';

const UUID = '07755880-522b-4316-8be5-7e92e496c83e';

function config(mqtt: string): ReturnType<typeof loadConfig>['config'] {
  return loadConfig({ file: 'agent.ini', fileText: `[cloud]\napi_url = https://cloud.example/api/v1\n[mqtt]\n${mqtt}\n`, env: {} }).config;
}

const registered: PushIdentity = {
  uuid: UUID,
  generation: 'agents',
  mqtt: { broker: 'mqtts://broker.example:8883', username: `agent_${UUID}`, password: 'pw-from-registration', clientIdPrefix: 'agent-', tenantId: 't1', caCertPem: 'BROKER-CA' },
  caCertPem: 'API-CA',
};

describe('topics', () => {
  it('{A} is the uuid bytes in base64url without padding (test/cloud/CONTRACT.md example)', () => {
    expect(encodeUuidTopicSegment(UUID)).toBe('B3VYgFIrQxaL5X6S5JbIPg');
    expect(encodeUuidTopicSegment('not-a-uuid')).toBeNull();
  });
  it('generation devices: iot/device/{uuid}/jobs/notify-next', () => {
    expect(deriveTopics('devices', UUID, '')).toEqual([`iot/device/${UUID}/jobs/notify-next`]);
  });
  it('generation agents: both .../notify (what the server publishes) and .../notify-next (what its agent listens to)', () => {
    expect(deriveTopics('agents', UUID, 't1')).toEqual(['i/t1/a/B3VYgFIrQxaL5X6S5JbIPg/jobs/notify', 'i/t1/a/B3VYgFIrQxaL5X6S5JbIPg/jobs/notify-next']);
  });
  it('generation agents without a tenant id is a clear error', () => {
    expect(() => deriveTopics('agents', UUID, '')).toThrow(/set \[mqtt\] tenant_id/);
  });
  it('generation unknown: every topic that can be derived', () => {
    expect(deriveTopics(null, UUID, 't1')).toHaveLength(3);
    expect(deriveTopics(null, UUID, '')).toEqual([`iot/device/${UUID}/jobs/notify-next`]);
  });
});

describe('resolvePushSettings', () => {
  it('no [mqtt] broker and none registered: no push at all', () => {
    expect(resolvePushSettings(config(''), { ...registered, mqtt: null }, null, isLoopbackHost)).toBeNull();
  });
  it('broker = off wins over the registration', () => {
    expect(resolvePushSettings(config('broker = off'), registered, null, isLoopbackHost)).toBeNull();
  });
  it('everything from the registration: broker, user, password, client id prefix, tenant, both CAs', () => {
    const settings = resolvePushSettings(config(''), registered, null, isLoopbackHost);
    expect(settings).toMatchObject({
      brokerText: 'mqtts://broker.example:8883',
      username: `agent_${UUID}`,
      password: 'pw-from-registration',
      clientId: `agent-${UUID}`,
      keepaliveSeconds: 60,
      storedCaPems: ['BROKER-CA', 'API-CA'],
    });
    expect(settings?.topics[0]).toBe('i/t1/a/B3VYgFIrQxaL5X6S5JbIPg/jobs/notify');
  });
  it('[mqtt] keys and the password file override the registration', () => {
    const settings = resolvePushSettings(config('broker = mqtt://127.0.0.1\nusername = u\nclient_id = c\ntenant_id = t2\nkeepalive = 30s'), registered, 'file-pw', isLoopbackHost);
    expect(settings).toMatchObject({ brokerText: 'mqtt://127.0.0.1:1883', username: 'u', password: 'file-pw', clientId: 'c', keepaliveSeconds: 30 });
    expect(settings?.topics[0]).toBe('i/t2/a/B3VYgFIrQxaL5X6S5JbIPg/jobs/notify');
  });
  it('defaults without registration: device_{uuid}, cloudjobs_{uuid}', () => {
    const settings = resolvePushSettings(config('broker = mqtts://b.example'), { uuid: UUID, generation: 'devices', mqtt: null, caCertPem: null }, null, isLoopbackHost);
    expect(settings).toMatchObject({ username: `device_${UUID}`, clientId: `cloudjobs_${UUID}`, password: '' });
  });
  it('a registered mqtt:// broker on another host is refused without allow_insecure', () => {
    const identity = { ...registered, mqtt: { ...registered.mqtt!, broker: 'mqtt://broker.example:1883' } };
    expect(() => resolvePushSettings(config(''), identity, null, isLoopbackHost)).toThrow(/clear text/);
    expect(resolvePushSettings(config('allow_insecure = true'), identity, null, isLoopbackHost)?.brokerText).toBe('mqtt://broker.example:1883');
  });
});

describe('[mqtt] config', () => {
  it('rejects other schemes, credentials in the URL and mqtt:// to a remote host', () => {
    const problems = (text: string): string[] => {
      try {
        config(text);
        return [];
      } catch (error) {
        return (error as { problems: { key: string; expected: string }[] }).problems.map((p) => `${p.key}: ${p.expected}`);
      }
    };
    expect(problems('broker = ws://b.example')).toEqual([expect.stringMatching(/^mqtt\.broker: empty, off, or a broker URL/)]);
    expect(problems('broker = mqtts://u:p@b.example')).toHaveLength(1);
    expect(problems('broker = mqtt://b.example')).toEqual([expect.stringMatching(/^mqtt\.broker: an mqtts:\/\/ URL/)]);
    expect(problems('broker = mqtt://b.example\nallow_insecure = true')).toEqual([]);
    expect(problems('poll_interval_when_connected = 5')).toHaveLength(1);
    expect(problems('client_cert = /etc/hostname')).toEqual([expect.stringMatching(/^mqtt\.client_key: client_cert and client_key together/)]);
    expect(problems('pin_sha256 = abc')).toHaveLength(1);
  });
  it('poll_interval_when_connected is optional', () => {
    expect(config('').mqtt.poll_interval_when_connected).toBeNull();
    expect(config('poll_interval_when_connected = 5m').mqtt.poll_interval_when_connected).toBe(300_000);
  });
});

describe('reconnect policy', () => {
  const base = { intervalMs: 30_000, maxBackoffMs: 300_000, refused: false };
  it('full jitter over a step that starts at the poll interval and doubles to the cap', () => {
    expect(computeReconnectDelay(1, { ...base, random: () => 0.999999 })).toBe(30_000);
    expect(computeReconnectDelay(2, { ...base, random: () => 0.999999 })).toBe(60_000);
    expect(computeReconnectDelay(10, { ...base, random: () => 0.999999 })).toBe(300_000);
    expect(computeReconnectDelay(1, { ...base, random: () => 0 })).toBe(0);
    expect(computeReconnectDelay(1, { ...base, random: () => 0.5 })).toBe(15_000);
  });
  it('refused credentials wait the cap', () => {
    expect(computeReconnectDelay(1, { ...base, refused: true, random: () => 0 })).toBe(270_000);
  });
  it('the idle wait uses poll_interval_when_connected only while connected', () => {
    const options = { whenConnectedMs: 600_000, jitter: 0.1, random: () => 0.5 };
    expect(chooseIdleInterval(30_000, { ...options, connected: false })).toBe(30_000);
    expect(chooseIdleInterval(30_000, { ...options, connected: true })).toBe(600_000);
    expect(chooseIdleInterval(30_000, { ...options, whenConnectedMs: null, connected: true })).toBe(30_000);
  });
});

describe('classifyPushFailure', () => {
  const context = { broker: 'mqtts://b.example:8883', refusal: null, wasConnected: false };
  it('CONNACK codes name the fix', () => {
    expect(classifyPushFailure(Object.assign(new Error('Connection refused'), { code: 4 }), context)).toMatchObject({ kind: 'refused', loud: true, message: expect.stringContaining('bad user name or password') });
    expect(classifyPushFailure(Object.assign(new Error('x'), { code: 3 }), context)).toMatchObject({ kind: 'refused', loud: false });
  });
  it('TLS, DNS, unreachable and lost connections', () => {
    expect(classifyPushFailure(Object.assign(new Error('x'), { code: 'UNABLE_TO_VERIFY_LEAF_SIGNATURE' }), context)).toMatchObject({ kind: 'tls', message: expect.stringContaining('set mqtt.ca_file') });
    expect(classifyPushFailure(Object.assign(new Error('x'), { code: 'ERR_TLS_CERT_ALTNAME_INVALID' }), context)).toMatchObject({ kind: 'tls' });
    expect(classifyPushFailure(Object.assign(new Error('x'), { code: 'ENOTFOUND' }), context)).toMatchObject({ kind: 'dns' });
    expect(classifyPushFailure(Object.assign(new Error('x'), { code: 'ECONNREFUSED' }), context)).toMatchObject({ kind: 'unreachable' });
    expect(classifyPushFailure(new Error('connack timeout'), context)).toMatchObject({ kind: 'unreachable' });
    expect(classifyPushFailure(null, { ...context, wasConnected: true })).toMatchObject({ kind: 'lost' });
    expect(classifyPushFailure(null, { ...context, refusal: { kind: 'pin', host: 'b', detail: 'sha256//X' } })).toMatchObject({ kind: 'tls', message: expect.stringContaining('sha256//X') });
  });
});

describe('readMqttRegistration', () => {
  it('takes mqtt.broker, the credentials, brokerConfig and tenantId', () => {
    expect(
      readMqttRegistration({
        tenantId: 't1',
        mqtt: { broker: 'mqtt://10.0.0.5:1883', username: 'agent_x', password: 'p', brokerConfig: { clientIdPrefix: 'agent-', keepAlive: 30, caCert: '-----BEGIN CERTIFICATE-----\nx' } },
      }),
    ).toEqual({ broker: 'mqtt://10.0.0.5:1883', username: 'agent_x', password: 'p', clientIdPrefix: 'agent-', keepAliveSeconds: 30, caCertPem: '-----BEGIN CERTIFICATE-----\nx', tenantId: 't1' });
  });
  it('builds the URL from brokerConfig when broker is a bare host', () => {
    expect(readMqttRegistration({ mqtt: { broker: '', username: 'u', password: 'p', brokerConfig: { host: 'b.example', port: 8883, useTls: true } } })?.broker).toBe('mqtts://b.example:8883');
  });
  it('no broker, no username, or hostile text: no push', () => {
    expect(readMqttRegistration({ mqtt: { broker: '', username: 'u' } })).toBeNull();
    expect(readMqttRegistration({ mqtt: { broker: 'mqtt://b', username: '' } })).toBeNull();
    expect(readMqttRegistration({ mqtt: { broker: `mqtt://${'a'.repeat(600)}`, username: 'u' } })).toBeNull();
    expect(readMqttRegistration({ mqtt: { broker: 'http://b.example', username: 'u' } })).toBeNull();
    expect(readMqttRegistration({})).toBeNull();
  });
});
