#!/usr/bin/env bash
# Issue 14 under a real systemd (nspawn, the amd64 package): a dead loop of the
# agent makes it exit 70 and systemd restart it; a drain longer than the unit's
# TimeoutStopSec is not cut short (the agent sends EXTEND_TIMEOUT_USEC).
# The loop deaths are injected with CLOUDJOBS_TEST_LOOP_DEATH (TEST ONLY, read
# by src/main.ts) through a drop-in.
#
# Usage: test/integration/loop-death.sh [DEB]   (default build/cloudjobs_<v>_amd64.deb)
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
IT_NAME=loop-death
. "$HERE/lib/common.sh"
. "$HERE/lib/binfmt.sh"
. "$HERE/lib/rootfs.sh"
. "$HERE/lib/nspawn.sh"
. "$HERE/lib/cloud-admin.sh"

DEB=${1:-$(ls -t "$ROOT"/build/cloudjobs_*_amd64.deb 2>/dev/null | head -n1 || true)}
[ -n "$DEB" ] && [ -f "$DEB" ] || fail "no amd64 .deb (run make deb ARCH=amd64 first)"
DEB=$(realpath "$DEB")

why=$(nspawn_unusable)
[ -z "$why" ] || skip "$why"
if [ ! -s "$(rootfs_tarball amd64)" ] && ! command -v debootstrap >/dev/null; then
  skip "no cached rootfs at $(rootfs_tarball amd64) and no debootstrap to build it"
fi

UUID=0d9e8f7a-6b5c-4d3e-9f1a-2b3c4d5e6f70
KEY=$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')
PORT=4003
WORK=$(mktemp -d /tmp/cloudjobs-it.XXXXXX)
CLOUD_PID=''

cleanup() {
  if [ -n "$CLOUD_PID" ]; then kill -TERM "$CLOUD_PID" 2>/dev/null || true; wait "$CLOUD_PID" 2>/dev/null || true; fi
  stop_container
  rm -rf "$WORK"
}
trap cleanup EXIT

step "rootfs, boot, install"
ensure_rootfs amd64
DIR=$(extracted_rootfs amd64)
cp "$DEB" "$WORK/cloudjobs_amd64.deb"
"$ROOT/node_modules/.bin/esbuild" "$ROOT/test/cloud/main.ts" --bundle --platform=node --format=cjs \
  --log-level=warning --outfile="$WORK/reference-cloud.cjs"
boot_container "$DIR" "$WORK"
out=$(ct env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends /mnt/host/cloudjobs_amd64.deb 2>&1) \
  || { echo "$out" >&2; fail "apt-get install failed"; }
ok "installed"

nrestarts_at_least() { [ "$(show NRestarts)" -ge "$1" ]; }
# exits_with_70: how often systemd logged the agent exiting with status 70 so far.
exits_with_70() { ct journalctl -u cloudjobs.service --no-pager -o cat | grep -c 'Main process exited, code=exited, status=70' || true; }
# dropin NAME TEXT: installs a drop-in for cloudjobs.service and reloads systemd.
dropin() {
  printf '%b' "$2" > "$WORK/$1.conf"
  ct mkdir -p /etc/systemd/system/cloudjobs.service.d
  ct cp "/mnt/host/$1.conf" "/etc/systemd/system/cloudjobs.service.d/$1.conf"
  ct systemctl daemon-reload
}
undropin() {
  ct rm -f "/etc/systemd/system/cloudjobs.service.d/$1.conf"
  ct systemctl daemon-reload
}

step "configure against the reference cloud"
ct_start_cloud
ct_install_agent_ini '[jobs]' 'progress_interval = 1s' '[agent]' 'drain_timeout = 60s'
dropin it-start '[Service]\nTimeoutStartSec=30s\nRestartSec=1s\n'

for loop in delivery poll; do
  step "the $loop loop dies: exit 70, systemd restarts the agent"
  undropin it-death
  ct systemctl reset-failed cloudjobs.service 2>/dev/null || true
  ct systemctl restart cloudjobs.service || bad "restart before the $loop death failed"
  before=$(show NRestarts)
  exits70=$(exits_with_70)
  dropin it-death "[Service]\nEnvironment=\"CLOUDJOBS_TEST_LOOP_DEATH=$loop:2000\"\n"
  ct systemctl restart cloudjobs.service || bad "restart with the $loop death failed"
  old_pid=$(show MainPID)
  wait_until 40 "a restart after the $loop loop died" nrestarts_at_least $((before + 1)) || true
  journal=$(ct journalctl -u cloudjobs.service --no-pager -o cat _PID="$old_pid" + _COMM=systemd 2>/dev/null || true)
  check_match "journal: the $loop loop died" "the $loop loop died: test fault: CLOUDJOBS_TEST_LOOP_DEATH killed the $loop loop; the agent exits with status 70" "$journal"
  [ "$(exits_with_70)" -gt "$exits70" ] && ok "systemd saw the main process exit with status 70" \
    || bad "no new 'Main process exited, code=exited, status=70' in the journal"
  new_pid=$(show MainPID)
  [ "$new_pid" != "$old_pid" ] && ok "restarted: main pid $old_pid -> $new_pid" || bad "main pid did not change ($old_pid)"
done
undropin it-death
ct systemctl reset-failed cloudjobs.service 2>/dev/null || true
ct systemctl restart cloudjobs.service || bad "restart without the injected death failed"

step "after the deaths the agent works: a job runs"
doc='{"version":"1.0","includeStdOut":true,"steps":[{"name":"Say hi","type":"runCommand","input":{"command":"echo,alive"}}]}'
job=$(queue_job "After deaths" "$doc")
wait_until 30 "job $job SUCCEEDED" job_is "$job" SUCCEEDED || true
check_eq "job status at the cloud" SUCCEEDED "$(job_status "$job")"

step "a drain longer than TimeoutStopSec is not killed (EXTEND_TIMEOUT_USEC)"
dropin it-stop '[Service]\nTimeoutStopSec=4s\n'
ct systemctl restart cloudjobs.service || bad "restart with TimeoutStopSec=4s failed"
check_eq "TimeoutStopUSec" 4s "$(show TimeoutStopUSec)"
doc='{"version":"1.0","includeStdOut":true,"steps":[{"name":"Long work","type":"runCommand","input":{"command":"sh,-c,touch /dev/shm/it-long-started; sleep 10; echo drained"}}]}'
job=$(queue_job "Long drain" "$doc")
ct_wait_step_started /dev/shm/it-long-started
stop_started=$(date +%s)
ct systemctl stop cloudjobs.service || bad "systemctl stop failed"
stop_seconds=$(($(date +%s) - stop_started))
check_eq "Result of the stop" success "$(show Result)"
check_eq "job status at the cloud" SUCCEEDED "$(job_status "$job")"
check_match "drained job's output" 'drained' "$(admin GET "/jobs/$job" | jq -r .stdout)"
[ "$stop_seconds" -ge 6 ] && ok "stop outlasted TimeoutStopSec=4s (${stop_seconds}s)" || bad "stop took ${stop_seconds}s"
check_eq "no SIGKILL by systemd" "" "$(ct journalctl -u cloudjobs.service --no-pager -o cat | grep -E 'State .stop-sigterm. timed out|Killing process' || true)"
undropin it-stop

finish
