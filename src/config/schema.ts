// The single source of every configuration key: its type, default, doc line,
// environment variable and whether it is secret. The loader, `check-config`,
// the sample agent.ini in the package and the README table all derive from it.

/** The kinds of value a key can hold. */
export type KeyKind =
  | 'string'
  | 'secret'
  | 'url'
  | 'path'
  | 'bool'
  | 'duration'
  | 'size'
  | 'percent'
  | 'int'
  | 'enum'
  | 'list'
  | 'level';

/** One configuration key. */
export interface KeySpec {
  section: string;
  key: string;
  kind: KeyKind;
  /** The default as it would be written in agent.ini ('' means empty/unset). */
  default: string;
  /** One line for the sample file, `check-config` and the README table. */
  doc: string;
  /** Allowed values of an enum. */
  values?: readonly string[];
  /** Lower bound in the key's unit (ms for durations, bytes for sizes). */
  min?: number;
  /** Upper bound in the key's unit. */
  max?: number;
  /** Required to run the agent (check-config reports it missing). */
  required?: boolean;
}

/** The environment variable that overrides a key: CLOUDJOBS_<SECTION>_<KEY>. */
export function envNameOf(spec: Pick<KeySpec, 'section' | 'key'>): string {
  return `CLOUDJOBS_${spec.section}_${spec.key}`.toUpperCase();
}

// Every key, in the order of the sample file, with its literal types kept (the
// Config type derives from them). Each entry's `doc` and `default` document the key.
const ENTRIES = [
  // [cloud]
  { section: 'cloud', key: 'api_url', kind: 'url', default: '', required: true,
    doc: 'Base URL of the cloud API, e.g. https://cloud.example.com/api/v1' },
  { section: 'cloud', key: 'api_generation', kind: 'enum', default: 'auto', values: ['auto', 'devices', 'agents'],
    doc: 'Path generation the server speaks: devices (/devices/{uuid}/...), agents (/agents/{uuid}/...) or auto to detect it' },
  { section: 'cloud', key: 'api_key', kind: 'secret', default: '',
    doc: 'Device API key sent as X-Device-API-Key; prefer api_key_file or registration' },
  { section: 'cloud', key: 'api_key_file', kind: 'path', default: '',
    doc: 'File holding the device API key (first line), readable by root only' },
  { section: 'cloud', key: 'request_timeout', kind: 'duration', default: '30s', min: 100, max: 600_000,
    doc: 'Time limit for one HTTP request to the cloud' },
  { section: 'cloud', key: 'allow_insecure_http', kind: 'bool', default: 'false',
    doc: 'Allow http:// to hosts other than loopback (API key and jobs travel in clear text)' },
  { section: 'cloud', key: 'ca_file', kind: 'path', default: '',
    doc: 'PEM bundle of extra CAs to trust for the API (added to the system CAs)' },
  { section: 'cloud', key: 'pin_sha256', kind: 'list', default: '',
    doc: 'Comma-separated base64 SHA-256 of the server public key (SPKI); any other key is refused' },
  { section: 'cloud', key: 'client_cert', kind: 'path', default: '',
    doc: 'PEM client certificate for mutual TLS' },
  { section: 'cloud', key: 'client_key', kind: 'path', default: '',
    doc: 'PEM private key of client_cert' },
  // [device]
  { section: 'device', key: 'uuid', kind: 'string', default: '',
    doc: 'Device uuid; empty: the identity stored by registration, then the local supervisor API' },
  { section: 'device', key: 'provisioning_key_file', kind: 'path', default: '',
    doc: 'File holding a fleet provisioning key; with no identity the agent registers itself' },
  { section: 'device', key: 'device_name', kind: 'string', default: '',
    doc: 'Name sent at registration (default: the host name)' },
  { section: 'device', key: 'device_type', kind: 'string', default: '',
    doc: 'Type sent at registration (default: the board model, e.g. Raspberry Pi 4 Model B)' },
  { section: 'device', key: 'supervisor_url', kind: 'url', default: 'http://127.0.0.1:48484',
    doc: 'Local supervisor API asked for the uuid (GET /v2/device) as a last resort; empty to disable' },
  // [polling]
  { section: 'polling', key: 'interval', kind: 'duration', default: '30s', min: 100, max: 86_400_000,
    doc: 'Time between polls for a new job (values below 5s are for tests and demos)' },
  { section: 'polling', key: 'jitter', kind: 'percent', default: '10%', min: 0, max: 100,
    doc: 'Random spread added to each wait so a fleet does not poll in step' },
  { section: 'polling', key: 'max_backoff', kind: 'duration', default: '5m', min: 1000, max: 86_400_000,
    doc: 'Longest wait between retries after failures (auth errors retry at this pace)' },
  // [jobs]
  { section: 'jobs', key: 'enabled', kind: 'bool', default: 'true',
    doc: 'Take jobs from the cloud; false keeps the agent running idle' },
  { section: 'jobs', key: 'run_as_user', kind: 'string', default: 'cloudjobs',
    doc: 'User that steps run as when a step names no runAsUser' },
  { section: 'jobs', key: 'allowed_users', kind: 'list', default: '',
    doc: 'Users a step may ask for with runAsUser (empty: only run_as_user); root only if listed' },
  { section: 'jobs', key: 'handler_dirs', kind: 'list', default: '/etc/cloudjobs/handlers,/usr/lib/cloudjobs/handlers',
    doc: 'Directories searched, in order, for runHandler executables' },
  { section: 'jobs', key: 'work_dir', kind: 'path', default: '/var/cache/cloudjobs/work',
    doc: 'Each job gets a fresh working directory below this, removed afterwards' },
  { section: 'jobs', key: 'default_timeout', kind: 'duration', default: '1h', min: 1000, max: 604_800_000,
    doc: 'Time limit of a job whose offer has no timeout_seconds' },
  { section: 'jobs', key: 'kill_grace', kind: 'duration', default: '10s', min: 0, max: 600_000,
    doc: 'Time between SIGTERM and SIGKILL when a step is stopped' },
  { section: 'jobs', key: 'max_output', kind: 'size', default: '64KiB', min: 1024, max: 16_777_216,
    doc: 'Output kept per stream of a step (head and tail; the middle is counted and dropped)' },
  { section: 'jobs', key: 'progress_interval', kind: 'duration', default: '10s', min: 100, max: 3_600_000,
    doc: 'Time between IN_PROGRESS reports while a job runs' },
  { section: 'jobs', key: 'max_parallel', kind: 'int', default: '4', min: 1, max: 64,
    doc: 'Members of a parallel step that run at once' },
  { section: 'jobs', key: 'path', kind: 'string', default: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
    doc: 'PATH given to steps and used to find their commands' },
  { section: 'jobs', key: 'max_reboots', kind: 'int', default: '3', min: 0, max: 100,
    doc: 'Reboots one job may ask for (a step exiting 194, the reboot handler); 0 turns reboots by jobs off' },
  { section: 'jobs', key: 'reboot_timeout', kind: 'duration', default: '10m', min: 100, max: 86_400_000,
    doc: 'How long after a reboot request the device must have rebooted, else the job FAILED "reboot did not happen"' },
  { section: 'jobs', key: 'reboot_command', kind: 'string', default: 'systemctl reboot',
    doc: 'Command (words, no shell) the agent runs to reboot when a job asks; an orderly reboot through systemd' },
  { section: 'jobs', key: 'maintenance_windows', kind: 'list', default: '',
    doc: 'When a new job may start: comma-separated [DAYS ]HH:MM-HH:MM in local time (Mon-Fri 22:00-02:00, Sat-Sun 00:00-24:00); empty: always' },
  { section: 'jobs', key: 'hold_dir', kind: 'path', default: '/run/cloudjobs-holds',
    doc: 'Applications hold jobs by keeping a lock on a file here (group cloudjobs-hold); empty: no application holds' },
  { section: 'jobs', key: 'memory_max', kind: 'size', default: '256MiB', min: 0, max: 1_099_511_627_776,
    doc: 'Memory (RAM, no swap) one job may use, all its processes together; over it the kernel kills inside the job and the job ends FAILED "out of memory"; 0B: no limit (enforced under systemd with cgroup v2)' },
  { section: 'jobs', key: 'tasks_max', kind: 'int', default: '512', min: 0, max: 4_194_304,
    doc: 'Processes and threads one job may have at once; a job that reaches it is stopped, FAILED; 0: no limit (enforced under systemd)' },
  { section: 'jobs', key: 'cpu_quota', kind: 'percent', default: '80%', min: 0, max: 6400,
    doc: 'CPU time one job may use, in percent of one CPU as systemd\'s CPUQuota= (200% is two CPUs); 0%: no quota (enforced under systemd)' },
  { section: 'jobs', key: 'reboot_users', kind: 'list', default: '',
    doc: 'Users besides root whose steps may ask for a reboot (exit 194, the reboot handler); a request from any other user ends the job FAILED' },
  // [agent]
  { section: 'agent', key: 'state_dir', kind: 'path', default: '/var/lib/cloudjobs',
    doc: 'Durable state: identity, job journal, outbox, history' },
  { section: 'agent', key: 'runtime_dir', kind: 'path', default: '/run/cloudjobs',
    doc: 'Runtime files: the status that `cloudjobs status` reads, the boot marker, and the native helper of an executable run outside the package (must allow exec)' },
  { section: 'agent', key: 'boot_id_file', kind: 'path', default: '/proc/sys/kernel/random/boot_id',
    doc: 'File holding the kernel boot id, which tells a reboot from an agent restart (for tests)' },
  { section: 'agent', key: 'drain_timeout', kind: 'duration', default: '5m', min: 0, max: 3_600_000,
    doc: 'On stop, how long a running job may finish before it is killed' },
  { section: 'agent', key: 'history_size', kind: 'int', default: '100', min: 1, max: 10_000,
    doc: 'Finished jobs kept for `cloudjobs history`' },
  { section: 'agent', key: 'history_max_bytes', kind: 'size', default: '16MiB', min: 65_536, max: 1_073_741_824,
    doc: 'Bytes of history kept at most: the oldest jobs go first, and one job keeps at most a quarter of it (its output is cut)' },
  { section: 'agent', key: 'outbox_max_reports', kind: 'int', default: '1000', min: 10, max: 1_000_000,
    doc: 'Reports waiting for the cloud at most; when full the oldest progress reports go first' },
  { section: 'agent', key: 'outbox_max_bytes', kind: 'size', default: '32MiB', min: 65_536, max: 1_073_741_824,
    doc: 'Bytes of reports waiting for the cloud at most' },
  // [mqtt]
  { section: 'mqtt', key: 'broker', kind: 'string', default: '',
    doc: 'Broker for push notifications (mqtt://host:port or mqtts://host:port); empty: the broker from the registration answer, if any; off: no push, polling only' },
  { section: 'mqtt', key: 'username', kind: 'string', default: '',
    doc: 'Broker user name; empty: the one from registration, else device_{uuid} (generation devices) or agent_{uuid} (agents)' },
  { section: 'mqtt', key: 'password_file', kind: 'path', default: '',
    doc: 'File holding the broker password (first line), readable by root only; empty: the password stored at registration' },
  { section: 'mqtt', key: 'client_id', kind: 'string', default: '',
    doc: 'MQTT client id; empty: the registration\'s brokerConfig.clientIdPrefix (else cloudjobs_) followed by the uuid' },
  { section: 'mqtt', key: 'tenant_id', kind: 'string', default: '',
    doc: 'Tenant of the generation agents topics (i/{tenantId}/a/...); empty: the one from registration' },
  { section: 'mqtt', key: 'keepalive', kind: 'duration', default: '60s', min: 5000, max: 3_600_000,
    doc: 'MQTT keepalive: the broker drops a silent connection after 1.5 times this' },
  { section: 'mqtt', key: 'poll_interval_when_connected', kind: 'duration', default: '', min: 100, max: 86_400_000,
    doc: 'Time between safety-net polls while the broker connection is up; empty: polling.interval' },
  { section: 'mqtt', key: 'allow_insecure', kind: 'bool', default: 'false',
    doc: 'Allow mqtt:// to hosts other than loopback (the broker password travels in clear text)' },
  { section: 'mqtt', key: 'ca_file', kind: 'path', default: '',
    doc: 'PEM bundle of extra CAs to trust for the broker (added to the system CAs and the registration CAs)' },
  { section: 'mqtt', key: 'pin_sha256', kind: 'list', default: '',
    doc: 'Comma-separated base64 SHA-256 of the broker public key (SPKI); any other key is refused' },
  { section: 'mqtt', key: 'client_cert', kind: 'path', default: '',
    doc: 'PEM client certificate for mutual TLS with the broker' },
  { section: 'mqtt', key: 'client_key', kind: 'path', default: '',
    doc: 'PEM private key of client_cert' },
  // [security]
  { section: 'security', key: 'trusted_keys_dir', kind: 'path', default: '/etc/cloudjobs/trusted-keys.d',
    doc: 'Ed25519 public keys (*.pem, root-owned, not group/other-writable) whose signatures on job documents are trusted' },
  { section: 'security', key: 'require_signed_jobs', kind: 'bool', default: 'false',
    doc: 'Refuse (REJECTED) every job document without a valid signature; a signed one is always checked' },
  // [metrics]
  { section: 'metrics', key: 'listen', kind: 'string', default: '',
    doc: 'Serve /metrics (Prometheus text format) on HOST:PORT, e.g. 127.0.0.1:9464; empty: no HTTP endpoint' },
  { section: 'metrics', key: 'allow_remote', kind: 'bool', default: 'false',
    doc: 'Allow listen on an address other than loopback (anyone who reaches it reads the metrics)' },
  { section: 'metrics', key: 'textfile', kind: 'path', default: '',
    doc: "File (*.prom) rewritten for node_exporter's textfile collector when a value changes; empty: none" },
  // [logging]
  { section: 'logging', key: 'level', kind: 'level', default: 'info', values: ['error', 'warn', 'info', 'debug'],
    doc: 'Least severe level logged: error, warn, info or debug' },
] as const satisfies readonly KeySpec[];

/** Every key, in the order of the sample file. */
export const SCHEMA: readonly KeySpec[] = ENTRIES;

/** One entry of SCHEMA, with its literal section, key, kind and values. */
type SchemaEntry = (typeof ENTRIES)[number];

/** What a key of each kind holds once parsed (durations ms, sizes bytes, percent a fraction 0..1). */
type ValueOf<S extends SchemaEntry> = S extends { values: readonly (infer V)[] }
  ? V
  : S['kind'] extends 'bool'
    ? boolean
    : S['kind'] extends 'duration'
      ? S['default'] extends '' // a duration with no default is optional (mqtt.poll_interval_when_connected)
        ? number | null
        : number
      : S['kind'] extends 'size' | 'percent' | 'int'
      ? number
      : S['kind'] extends 'list'
        ? readonly string[]
        : string;

/** The parsed, validated, frozen configuration, derived from SCHEMA: `config.<section>.<key>`. */
export type Config = {
  readonly [Section in SchemaEntry['section']]: {
    readonly [S in Extract<SchemaEntry, { section: Section }> as S['key']]: ValueOf<S>;
  };
};
