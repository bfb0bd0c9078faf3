#!/usr/bin/env bash
# Figures only a real kernel gives (run by `make bench`, test/bench/run.sh):
# the amd64 .deb in a Debian VM (qemu, TCG) with a persistent journal
# (/var/log/journal), polling a reference cloud on the host every 30 s (the
# default). Bytes written are QMP's wr_bytes of the VM's disk, each window
# opened and closed by a `sync` in the guest, so everything dirtied in the
# window is counted (journal entries included).
#   V1 bytes written per idle hour, agent running minus agent stopped
#      (measured over VM_BENCH_WINDOW seconds each, scaled to an hour; goal 0)
#   V2 bytes written per one-step job (VM_BENCH_JOBS jobs, minus the idle rate
#      over the same time; goal <= 64 KiB)
#   V2a-c where V2's bytes come from, by difference: the same jobs again with
#      the journal volatile (V2 minus that = the journal's share), then with
#      the agent's state directory on a tmpfs too (the rest = neither);
#      the state directory's share is what remains
#   V2d for scale: one line another program logs (systemd-cat) in an
#      otherwise idle window: what the persistent journal writes for any
#      entry, whatever it says (median of 3)
#   V3 idle RSS of the agent (VmRSS of the unit's main process)
# Prints a markdown section; with --results FILE it replaces the section
# between the vm-bench markers in FILE (appends it when missing).
# Usage: test/vm/bench.sh [--suite bookworm|trixie] [--results FILE] [DEB]
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VM_REPO="$(cd "$HERE/../.." && pwd)"
SUITE=bookworm
RESULTS=''
while [ $# -gt 0 ]; do
  case "$1" in
    --suite) SUITE=$2; shift 2 ;;
    --results) RESULTS=$2; shift 2 ;;
    *) break ;;
  esac
done
IT_NAME=vm-bench-$SUITE
. "$VM_REPO/test/integration/lib/common.sh"
. "$HERE/lib/vm.sh"
. "$HERE/lib/agent.sh"
DEB=$(realpath "${1:-$(built_deb amd64)}" 2>/dev/null || true)
why=$(vm_unusable)
[ -z "$why" ] || fail "$why"
WINDOW=${VM_BENCH_WINDOW:-300}
JOBS=${VM_BENCH_JOBS:-10}
SETTLE=${VM_BENCH_SETTLE:-40}

WORK=$(mktemp -d /tmp/cloudjobs-vm-bench.XXXXXX)
cleanup() { vm_cleanup; rm -rf "$WORK"; }
trap cleanup EXIT

# written_during CMD...: bytes written to the disk while CMD runs, between two guest syncs.
written_during() {
  local before after
  vm_sh sync
  before=$(vm_bytes_written)
  "$@"
  vm_sh sync
  after=$(vm_bytes_written)
  echo $((after - before))
}
run_jobs() {
  local i id
  for i in $(seq 1 "$JOBS"); do
    id=$(vm_queue_job "bench-$i" "$(vm_run_job_doc 'echo hello')")
    wait_until 120 "bench job $i" vm_job_final "$id" || fail "bench job $i did not end"
  done
}
kib() { awk -v b="$1" 'BEGIN { printf "%.1f KiB", b / 1024 }'; }

step "$SUITE: the agent installed, stopped; persistent journal"
VM_POLL_INTERVAL=30s vm_agent_setup "$SUITE" "$WORK"
KERNEL=$(vm_sh uname -r)
check_eq "journal storage" persistent "$(vm_sh 'test -d /var/log/journal/$(cat /etc/machine-id) && echo persistent')"
vm_sh "systemctl disable --now cloudjobs.service" >/dev/null 2>&1
sleep "$SETTLE"

step "$SUITE: idle without the agent (${WINDOW}s)"
idle_without=$(written_during sleep "$WINDOW")
ok "written without the agent: $idle_without bytes"

step "$SUITE: idle with the agent (${WINDOW}s after ${SETTLE}s to settle)"
vm_sh systemctl start cloudjobs.service
wait_until 90 "agent active" vm_unit_is active || fail "the agent did not start"
sleep "$SETTLE"
idle_with=$(written_during sleep "$WINDOW")
ok "written with the agent: $idle_with bytes"
pid=$(vm_unit MainPID)
rss_kib=$(vm_sh "awk '/^VmRSS:/ { print \$2 }' /proc/$pid/status")

step "$SUITE: $JOBS one-step jobs"
started=$(date +%s)
jobs_bytes=$(written_during run_jobs)
jobs_seconds=$(($(date +%s) - started))
per_hour=$(( (idle_with - idle_without) * 3600 / WINDOW ))
idle_rate_with=$(( idle_with * jobs_seconds / WINDOW ))
per_job=$(( (jobs_bytes - idle_rate_with) / JOBS ))

step "$SUITE: one line logged by systemd-cat in an otherwise idle window, three times"
one_line() { vm_sh 'echo "cloudjobs bench line $RANDOM" | systemd-cat -t cloudjobs-bench'; sleep 2; }
journal_line=$(for i in 1 2 3; do written_during one_line; done | sort -n | sed -n 2p)
ok "one journal line: $journal_line bytes (median of 3)"

step "$SUITE: the same jobs with the journal volatile"
vm_sh 'mkdir -p /etc/systemd/journald.conf.d && printf "[Journal]\nStorage=volatile\n" > /etc/systemd/journald.conf.d/bench.conf && systemctl restart systemd-journald'
sleep 5
per_job_volatile=$(( $(written_during run_jobs) / JOBS ))

step "$SUITE: the same jobs with the journal volatile and the state directory on a tmpfs"
vm_sh 'systemctl stop cloudjobs.service && cp -a /var/lib/cloudjobs /root/state-copy && mount -t tmpfs -o mode=0700 tmpfs /var/lib/cloudjobs && cp -a /root/state-copy/. /var/lib/cloudjobs/ && systemctl start cloudjobs.service'
wait_until 90 "agent active" vm_unit_is active || fail "the agent did not start on the tmpfs state directory"
sleep 5
per_job_rest=$(( $(written_during run_jobs) / JOBS ))
vm_poweroff

verdict() { if [ "$1" -le "$2" ]; then echo met; else echo missed; fi; }
section=$(cat <<EOF
<!-- vm-bench: written by test/vm/bench.sh; do not edit by hand -->
## Figures from a VM (test/vm/bench.sh)

Debian $SUITE in qemu (TCG, $VM_CPUS vCPUs, $VM_MEMORY MiB), Debian's kernel $KERNEL, the amd64 .deb
installed with apt, persistent journal, polling every 30 s; bytes are QMP
\`query-blockstats\` wr_bytes of the VM's disk between two \`sync\`s in the
guest. Run $(date -u +%Y-%m-%dT%H:%MZ), git $(git -C "$VM_REPO" rev-parse --short HEAD),
host load average at the end $(cut -d' ' -f1-3 /proc/loadavg).

| row | without the agent | with the agent | figure | target | verdict |
|---|---|---|---|---|---|
| V1 bytes written per idle hour (${WINDOW} s windows, scaled x$((3600 / WINDOW))) | $idle_without B / ${WINDOW} s | $idle_with B / ${WINDOW} s | $(kib "$per_hour")/h | 0 | $(verdict "$per_hour" 0) |
| V2 bytes written per one-step job ($JOBS jobs in ${jobs_seconds} s, idle rate subtracted) | | $jobs_bytes B | $(kib "$per_job") | <= 64 KiB | $(verdict "$per_job" 65536) |
| V2a of which the journal (V2 minus V2 with a volatile journal) | | | $(kib $(( per_job - per_job_volatile ))) | report | report |
| V2b of which the agent's state directory (with a volatile journal, minus the same on a tmpfs) | | | $(kib $(( per_job_volatile - per_job_rest ))) | report | report |
| V2c of which neither (volatile journal, state on a tmpfs) | | | $(kib "$per_job_rest") | report | report |
| V2d for scale: one line another program logs (systemd-cat) in an otherwise idle window, median of 3 | | | $(kib "$journal_line") | report | report |
| V3 idle RSS (VmRSS, after ${SETTLE} s + ${WINDOW} s idle) | | | $((rss_kib / 1024)) MiB ($rss_kib KiB) | report | report |

V2a-c are differences between runs of the same jobs, not a trace: each is
exact only to the noise of one run (ext4 commits shared by two writers fall
to whichever run had them). The state directory's share: each durable record
(the job's journal entry when it starts, its final report in the outbox, its
history entry) is a new file fsynced once, one ext4 journal commit of several
4 KiB metadata blocks (inode, directory, bitmaps, group descriptor) that are
written again in place later, whatever the record's size; the outbox entry's
removal after delivery is one more, the journal entry's rides the periodic
commit. V2d is why the goal is out of reach while a job is logged at all:
journald links each entry into the entry array of every one of its fields
(about 20, most of them added by journald itself), so the first entry in a
writeback window dirties some 90 KiB of the journal file, whatever it
says; a job's lines (the agent's, and systemd's for the job's slice and
scope: several processes, so more entry arrays) cost a few times that.

The idle windows are ${WINDOW} s, not an hour (the CI budget): the hourly
figure is the difference scaled up, so what happens less often than once per
window (journald's 5 min sync, a timer) may be missed or counted whole.
<!-- /vm-bench -->
EOF
)
printf '%s\n' "$section"
if [ -n "$RESULTS" ]; then
  printf '%s\n' "$section" > "$WORK/section.md"
  if grep -q '^<!-- vm-bench' "$RESULTS"; then
    awk -v repl="$WORK/section.md" '
      /^<!-- vm-bench/ { while ((getline line < repl) > 0) print line; skip = 1; next }
      /^<!-- \/vm-bench -->/ { skip = 0; next }
      !skip { print }' "$RESULTS" > "$WORK/results.md"
  else
    { cat "$RESULTS"; printf '\n%s\n' "$section"; } > "$WORK/results.md"
  fi
  cp "$WORK/results.md" "$RESULTS"
  echo "bench: VM figures written to $RESULTS" >&2
fi
