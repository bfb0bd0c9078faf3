// The text of `cloudjobs --help`: every command, option, exit code, the config
// file and the environment override convention.
import { DEFAULT_CONFIG_FILE, DEFAULT_HISTORY_LIMIT } from './args.js';

/** Printed by `cloudjobs --help` and `cloudjobs help`. */
export const HELP_TEXT = `Usage: cloudjobs [--config FILE] COMMAND [OPTIONS]

cloudjobs polls a cloud portal over HTTP for jobs, runs them as a restricted
user and reports the results. systemd starts it as \`cloudjobs run\`.

Commands:
  run                     Run the agent in the foreground: poll for jobs, run
                          them one at a time, report their status. With jobs
                          disabled it keeps running idle and says why.
  check-config            Print the effective configuration (secrets redacted,
                          each value with where it came from) and the identity
                          source, or list every problem and exit 78.
  status [--json]         Show what the running agent is doing: polling or not,
                          API generation, current job and step, last poll and
                          its outcome, queued reports, version, and whether
                          and why jobs are held (--json: one stable object).
  history [--limit N] [--json]
                          Show the most recent finished jobs (N, a positive
                          whole number, default ${DEFAULT_HISTORY_LIMIT}).
  hold [--reason TEXT] [--for DURATION | --until TIME]
                          (root) Hold jobs: the agent asks the cloud for no
                          new job until \`cloudjobs release\` or the end given
                          (--for 2h: counted while the device is up; --until
                          18:00 or 2026-12-24T18:00: local time). A running
                          job finishes, reports are still sent. Survives
                          restarts and reboots. Applications hold jobs without
                          root with a locked file in [jobs] hold_dir.
  release                 (root) Remove the hold set by \`cloudjobs hold\`; says
                          which application holds remain.
  exec JOB.json           Run a job document locally through the same job
                          engine, without the cloud; print each step's result.
                          Exits 0 only if the job SUCCEEDED.
  register [--provisioning-key-file FILE | --provisioning-key-stdin]
           [--device-name NAME] [--device-type TYPE]
                          Register this device with a fleet provisioning key and
                          store its identity and API key in state_dir. The key
                          is the first line of FILE, or of standard input with
                          --provisioning-key-stdin (or --provisioning-key-file
                          -); without either, [device] provisioning_key_file is
                          used. A key on the command line (--provisioning-key
                          KEY) is refused: every local user could read it.
                          Running it again on a registered device changes
                          nothing.
  keygen --out DIR        Make an Ed25519 key pair for signing job documents:
                          DIR/<keyid>.private.pem (0600, keep it offline) and
                          DIR/<keyid>.pem (the public key devices trust).
  sign --key PRIVATE.pem [--expires 7d|TIME] [--device UUID]... [--nonce] FILE
                          Print the job document FILE signed with the key; the
                          options add claims the signature covers: expires (a
                          duration from now or an RFC 3339 time), the devices
                          it may run on, a nonce (it runs once; needs expires).
  verify FILE             Show a document's key id, claims and verdict on this
                          device. Exits 0 only if it would run here.
  help                    Print this text (also --help, -h).
  version                 Print the version (also --version, -V).

Global options (before or after the command):
  -c, --config FILE       Configuration file (default ${DEFAULT_CONFIG_FILE}).
                          Without --config a missing default file is allowed
                          and the defaults and environment are used.

Configuration:
  ${DEFAULT_CONFIG_FILE} is an INI file with sections [cloud], [device],
  [polling], [jobs], [agent], [mqtt], [security], [metrics] and [logging];
  the installed file lists every key, commented out, with its default.
  Durations take units (250ms, 30s, 5m, 1h), sizes too (64KiB, 32MiB), lists
  are comma-separated.
  Every key can be overridden by the environment variable
  CLOUDJOBS_<SECTION>_<KEY>, e.g. CLOUDJOBS_POLLING_INTERVAL=10s or
  CLOUDJOBS_CLOUD_API_URL=https://cloud.example.com/api/v1.
  Precedence, lowest first: defaults, the config file, the seed guide's
  variables, CLOUDJOBS_* variables. The seed guide's variables work as it
  documents them: CLOUD_API_URL, CLOUD_JOBS_POLLING_INTERVAL (milliseconds),
  DEBUG=true, DEVICE_API_KEY, DEVICE_UUID, and ENABLE_CLOUD_JOBS, which when
  set decides whether jobs run and then also needs ENABLE_JOB_ENGINE=true.

Exit codes:
  0   success
  1   failure (for exec: the job did not succeed)
  2   usage error (unknown command or option, missing or bad value)
  69  run under systemd: the native helper that sends READY=1 could not be
      loaded (the log says why); systemd does not restart it
  70  run: one of the agent's loops died or a bug escaped; systemd restarts it
  78  configuration error (every problem is listed)
`;
