#!/usr/bin/env bash
# The amd64 package under a real systemd: boots a cached Debian rootfs
# (bookworm, or trixie: Raspberry Pi OS's current base) with systemd-nspawn, installs the .deb with apt, runs the reference
# cloud on the container's loopback (host node in the container's network
# namespace), and checks what the operator sees: readiness with /run, /tmp and
# /var/tmp mounted noexec as on a real boot, STATUS, journal fields, the
# watchdog, drain on stop, exit 78 (config) and 69 (no READY sender) without a
# restart loop, and a purge that leaves nothing behind.
#
# Usage: test/integration/nspawn-systemd.sh [--suite bookworm|trixie] [DEB]
#        (default bookworm, build/cloudjobs_<v>_amd64.deb)
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
SUITE=bookworm
if [ "${1:-}" = --suite ]; then SUITE=$2; shift 2; fi
IT_NAME=nspawn-systemd-$SUITE
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
if [ ! -s "$(rootfs_tarball amd64 "$SUITE")" ] && ! command -v debootstrap >/dev/null; then
  skip "no cached rootfs at $(rootfs_tarball amd64 "$SUITE") and no debootstrap to build it"
fi

UUID=6f1c2d3e-4b5a-4c6d-8e7f-0a1b2c3d4e5f
KEY=$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')
PORT=4002
WORK=$(mktemp -d /tmp/cloudjobs-it.XXXXXX)
CLOUD_PID=''

cleanup() {
  if [ -n "$CLOUD_PID" ]; then kill -TERM "$CLOUD_PID" 2>/dev/null || true; wait "$CLOUD_PID" 2>/dev/null || true; fi
  stop_container
  rm -rf "$WORK"
}
trap cleanup EXIT

step "rootfs and boot"
ensure_rootfs amd64 "$SUITE"
DIR=$(extracted_rootfs amd64 "$SUITE")
# trixie's systemd (257) no longer boots on the cgroup v1 hierarchy a hybrid host
# would hand it: give the container the unified (v2) one.
case "$SUITE" in bookworm) ;; *) export SYSTEMD_NSPAWN_UNIFIED_HIERARCHY=1 ;; esac
cp "$DEB" "$WORK/cloudjobs_amd64.deb"
"$ROOT/node_modules/.bin/esbuild" "$ROOT/test/cloud/main.ts" --bundle --platform=node --format=cjs \
  --log-level=warning --outfile="$WORK/reference-cloud.cjs"
started=$(date +%s)
boot_container "$DIR" "$WORK"
ok "booted in $(($(date +%s) - started))s (leader pid $CT_LEADER)"

nrestarts_is() { [ "$(show NRestarts)" = "$1" ]; }

step "install with apt"
out=$(ct env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends /mnt/host/cloudjobs_amd64.deb 2>&1) \
  || { echo "$out" >&2; fail "apt-get install failed"; }
check_match "postinst message" 'installed and enabled, but not started' "$out"
# Debian has the video group but not Raspberry Pi OS's gpio, i2c, spi: only video.
check_match "postinst names the groups it added" "added to[[:space:]]+the groups video for access" "$(printf '%s' "$out" | tr '\n' ' ')"
check_eq "cloudjobs in the existing hardware groups only" "cloudjobs video" "$(ct id -nG cloudjobs)"
check_eq "no group created" "" "$(ct getent group gpio i2c spi || true)"
check_eq "unit enabled" enabled "$(ct systemctl is-enabled cloudjobs.service || true)"
check_eq "unit not started" inactive "$(ct systemctl is-active cloudjobs.service || true)"
check_eq "user cloudjobs" "cloudjobs:/nonexistent:/usr/sbin/nologin" "$(ct getent passwd cloudjobs | cut -d: -f1,6,7)"
check_match "group cloudjobs" '^cloudjobs:' "$(ct getent group cloudjobs)"
# application holds (README, Holding jobs): the group and the tmpfiles.d directory
check_match "group cloudjobs-hold" '^cloudjobs-hold:' "$(ct getent group cloudjobs-hold)"
check_eq "hold dir made by tmpfiles.d" "3770 root:cloudjobs-hold" "$(ct stat -c '%a %U:%G' /run/cloudjobs-holds)"
check_eq "agent.ini mode" "640 root:root" "$(ct stat -c '%a %U:%G' /etc/cloudjobs/agent.ini)"
check_eq "state dir mode" "700 root:root" "$(ct stat -c '%a %U:%G' /var/lib/cloudjobs)"
check_match "cloudjobs --version" "^cloudjobs $(package_version) \\(node v24\\.[0-9]+\\.[0-9]+, linux-x64, single executable\\)\$" "$(ct cloudjobs --version)"

step "a real boot's mounts: /run, /tmp, /var/tmp noexec"
# Debian's initramfs mounts /run nodev,noexec,nosuid; nspawn gives the container
# an exec-able /run, which is why no container test saw the agent fail there.
for m in /run /tmp /var/tmp; do
  ct mountpoint -q "$m" || ct mount --bind "$m" "$m"
  ct mount -o remount,bind,noexec,nosuid,nodev "$m"
  check_match "$m is noexec" '(^|,)noexec(,|$)' "$(ct findmnt -no OPTIONS -T "$m" | tail -n1)"
done
check_eq "the package's addon" "644 root:root /usr/lib/cloudjobs/datagram.node" "$(ct stat -c '%a %U:%G %n' /usr/lib/cloudjobs/datagram.node)"

step "systemd-analyze verify and security"
verify=$(ct systemd-analyze verify --man=no cloudjobs.service 2>&1) && rc=0 || rc=$?
check_eq "systemd-analyze verify exit" 0 "$rc"
check_eq "systemd-analyze verify output" "" "$verify"
security=$(ct systemd-analyze security --no-pager cloudjobs.service 2>&1 || true)
exposure=$(printf '%s\n' "$security" | grep -E 'Overall exposure level' || true)
check_match "systemd-analyze security" 'Overall exposure level for cloudjobs.service: [0-9.]+' "$exposure"
mkdir -p "$ROOT/build/it"
printf '%s\n' "$security" > "$ROOT/build/it/systemd-analyze-security.txt"
echo "  $exposure (full table: build/it/systemd-analyze-security.txt)" >&2

step "config error: exit 78, no restart loop"
ct systemctl start cloudjobs.service 2>/dev/null && bad "start with an empty api_url succeeded" || ok "start with an empty api_url failed"
check_eq "ExecMainStatus" 78 "$(show ExecMainStatus)"
check_eq "Result" exit-code "$(show Result)"
sleep 7 # longer than RestartSec=5s: a restart would have happened by now
check_eq "ActiveState after RestartSec" failed "$(show ActiveState)"
check_eq "NRestarts" 0 "$(show NRestarts)"
check_match "journal names the problem" 'api_url' "$(ct journalctl -u cloudjobs.service --no-pager -o cat)"
ct systemctl reset-failed cloudjobs.service

step "configure against the reference cloud on the container's loopback"
ct_start_cloud
ct_install_agent_ini '[agent]' 'drain_timeout = 60s' '[logging]' 'level = debug'
# A start that never sends READY=1 fails after 30s instead of 90s.
ct mkdir -p /etc/systemd/system/cloudjobs.service.d
printf '[Service]\nTimeoutStartSec=30s\n' > "$WORK/start.conf"
ct cp /mnt/host/start.conf /etc/systemd/system/cloudjobs.service.d/it-start.conf
ct systemctl daemon-reload

step "no READY sender: exit 69 at once, no restart loop"
ct mv /usr/lib/cloudjobs/datagram.node /usr/lib/cloudjobs/datagram.node.away
ct systemctl start cloudjobs.service 2>/dev/null && bad "start without the addon succeeded" || ok "start without the addon failed"
check_eq "ExecMainStatus" 69 "$(show ExecMainStatus)"
# exit-code, not timeout: it never sat in "activating" until TimeoutStartSec
check_eq "Result" exit-code "$(show Result)"
check_match "journal says what, why, what to do" \
  'cannot start under systemd: .*/usr/lib/cloudjobs/datagram.node is missing .*reinstall the package.*exit status 69' \
  "$(ct journalctl -u cloudjobs.service --no-pager -o cat | tr '\n' ' ')"
sleep 7 # longer than RestartSec=5s: a restart would have happened by now
check_eq "ActiveState after RestartSec" failed "$(show ActiveState)"
check_eq "NRestarts" 0 "$(show NRestarts)"
ct mv /usr/lib/cloudjobs/datagram.node.away /usr/lib/cloudjobs/datagram.node
ct systemctl reset-failed cloudjobs.service

step "start: active only after READY=1, STATUS shown"
ct systemctl start cloudjobs.service && ok "systemctl start returned" || bad "systemctl start failed"
# Type=notify: systemctl start returns and the unit is active only once READY=1 arrived.
check_eq "ActiveState" active "$(show ActiveState)"
check_eq "SubState" running "$(show SubState)"
check_eq "Type" notify "$(show Type)"
check_eq "/run is still noexec" noexec "$(ct findmnt -no OPTIONS /run | tr ',' '\n' | grep -x noexec)"
check_eq "no shared object written at start" "" "$(ct find /run /tmp /var/tmp /var/lib/cloudjobs -name '*.node' 2>/dev/null)"
check_match "journal: started after readiness" 'Started cloudjobs.service' "$(ct journalctl -u cloudjobs.service --no-pager -o cat | tail -n 50 | sed 's/Started cloudjobs.service - .*/Started cloudjobs.service/')"
wait_until 10 "a STATUS text" sh -c "[ -n \"\$(nsenter -t $CT_LEADER -a systemctl show -p StatusText --value cloudjobs.service)\" ]" || true
status_text=$(show StatusText)
check_match "StatusText" '.+' "$status_text"
# the agent moves from "starting" to "idle" at any moment: read both in one go, again until they agree
status_shown() {
  local text out
  text=$(show StatusText)
  out=$(ct systemctl status --no-pager cloudjobs.service || true)
  grep -qF "Status: \"$text\"" <<<"$out"
}
if wait_until 10 "systemctl status to show the StatusText" status_shown; then ok "systemctl status shows the StatusText"; fi

step "a job runs; its journal entries carry JOB_ID"
doc='{"version":"1.0","includeStdOut":true,"steps":[{"name":"Say hello","type":"runCommand","input":{"command":"echo,hello from nspawn"}}]}'
job=$(queue_job "Hello nspawn" "$doc")
check_match "queued job id" '^[0-9a-f-]{8,}$' "$job"
wait_until 30 "job $job SUCCEEDED" job_is "$job" SUCCEEDED || true
check_eq "job status at the cloud" SUCCEEDED "$(job_status "$job")"
check_match "stdout reported" 'hello from nspawn' "$(admin GET "/jobs/$job" | jq -r .stdout)"
entries=$(ct journalctl -u cloudjobs.service --no-pager -o json "JOB_ID=$job")
count=$(printf '%s\n' "$entries" | grep -c . || true)
check_match "entries with JOB_ID=$job" '^[1-9][0-9]*$' "$count"
check_eq "all carry SYSLOG_IDENTIFIER=cloudjobs" "$count" "$(printf '%s\n' "$entries" | jq -r 'select(.SYSLOG_IDENTIFIER=="cloudjobs") | .JOB_ID' | grep -cx "$job" || true)"
check_match "some carry JOB_NAME" 'Hello nspawn' "$(printf '%s\n' "$entries" | jq -r '.JOB_NAME // empty' | sort -u)"
check_match "PRIORITY is a syslog number" '^[0-7]$' "$(printf '%s\n' "$entries" | jq -r .PRIORITY | sort -u | head -n1)"
check_match "entries came through the native protocol" '^journal$' "$(printf '%s\n' "$entries" | jq -r ._TRANSPORT | sort -u)"

step "watchdog: SIGSTOP makes systemd restart the agent"
printf '[Service]\nWatchdogSec=4s\nTimeoutAbortSec=5s\n' > "$WORK/watchdog.conf"
ct cp /mnt/host/watchdog.conf /etc/systemd/system/cloudjobs.service.d/it-watchdog.conf
ct systemctl daemon-reload
ct systemctl restart cloudjobs.service || bad "restart with the short watchdog failed"
check_eq "WatchdogUSec" 4s "$(show WatchdogUSec)"
before=$(show NRestarts)
sleep 6 # healthy: pings keep it alive past one WatchdogSec
check_eq "still running after 6s with a 4s watchdog" "active $before" "$(show ActiveState) $(show NRestarts)"
old_pid=$(show MainPID)
# never `kill -STOP 0`: that would stop this test's own process group
case "$old_pid" in ''|0) fail "no main process to SIGSTOP (MainPID '$old_pid')" ;; esac
ct kill -STOP "$old_pid" || bad "cannot SIGSTOP main pid '$old_pid'"
wait_until 40 "a watchdog restart" nrestarts_is $((before + 1)) || true
wait_until 30 "active again" is_active || true
check_eq "NRestarts" $((before + 1)) "$(show NRestarts)"
new_pid=$(show MainPID)
[ "$new_pid" != "$old_pid" ] && [ "$new_pid" != 0 ] && ok "new main pid $new_pid" || bad "main pid did not change ($old_pid -> $new_pid)"
check_match "journal: watchdog timeout" 'Watchdog timeout' "$(ct journalctl -u cloudjobs.service --no-pager -o cat)"
ct rm -f /etc/systemd/system/cloudjobs.service.d/it-watchdog.conf
ct systemctl daemon-reload
ct systemctl restart cloudjobs.service || bad "restart without the short watchdog failed"

step "stop during a job: the job finishes within the drain time"
doc='{"version":"1.0","includeStdOut":true,"steps":[{"name":"Slow work","type":"runCommand","input":{"command":"sh,-c,touch /dev/shm/it-slow-started; sleep 6; echo drained"}}]}'
job=$(queue_job "Slow job" "$doc")
ct_wait_step_started /dev/shm/it-slow-started
stop_started=$(date +%s)
ct systemctl stop --no-block cloudjobs.service
wait_until 5 "deactivating" sh -c "[ \"\$(nsenter -t $CT_LEADER -a systemctl show -p ActiveState --value cloudjobs.service)\" = deactivating ]" || true
check_match "StatusText while stopping" '^stopping: .*Slow job' "$(show StatusText)"
wait_until 60 "the unit to stop" sh -c "[ \"\$(nsenter -t $CT_LEADER -a systemctl show -p ActiveState --value cloudjobs.service)\" = inactive ]" || true
stop_seconds=$(($(date +%s) - stop_started))
check_eq "ActiveState after stop" inactive "$(show ActiveState)"
check_eq "Result of the stop" success "$(show Result)"
check_eq "job status at the cloud" SUCCEEDED "$(job_status "$job")"
check_match "drained job's output" 'drained' "$(admin GET "/jobs/$job" | jq -r .stdout)"
[ "$stop_seconds" -ge 3 ] && ok "stop waited for the job (${stop_seconds}s)" || bad "stop took ${stop_seconds}s: the job cannot have finished"

step "stop during step 1 of two: step 2 runs in the agent's cgroup, as its user, and the job SUCCEEDED"
# While the unit stops, systemd starts no new scope in the job's slice (its stop
# job is queued through PartOf=): step 2 must not go through systemd-run.
# this test's own starts, not a restart loop: StartLimitBurst=5 would refuse the next one
ct systemctl reset-failed cloudjobs.service
ct systemctl start cloudjobs.service || bad "start before the two-step drain failed"
where='echo $0 uid=$(id -u) oom=$(cat /proc/self/oom_score_adj) cgroup=$(sed -n s/^0:://p /proc/self/cgroup)'
doc=$(jq -cn --arg w "$where" '{version:"1.0", includeStdOut:true, steps:[
  {name:"First", type:"runCommand", input:{command:("sh,-c,touch /dev/shm/it-two-started; sleep 4; " + $w + ",first")}},
  {name:"Second", type:"runCommand", input:{command:("sh,-c," + $w + ",second")}}]}')
job=$(queue_job "Two steps" "$doc")
ct_wait_step_started /dev/shm/it-two-started
stop_started=$(date +%s)
ct systemctl stop --no-block cloudjobs.service
wait_until 60 "the unit to stop" sh -c "[ \"\$(nsenter -t $CT_LEADER -a systemctl show -p ActiveState --value cloudjobs.service)\" = inactive ]" || true
stop_seconds=$(($(date +%s) - stop_started))
check_eq "Result of the stop" success "$(show Result)"
answer=$(admin GET "/jobs/$job")
check_eq "two-step job at the cloud" "SUCCEEDED 2 of 2 steps succeeded" "$(jq -r '"\(.status) \(.reason)"' <<<"$answer")"
out=$(jq -r .stdout <<<"$answer")
job_uid=$(ct id -u cloudjobs)
check_match "step 1 ran in its scope of the job's slice" "first uid=$job_uid oom=500 cgroup=/cloudjobs\.slice/cloudjobs-jobs\.slice/cloudjobs-jobs-[0-9a-f]{18}\.slice/cloudjobs-step-[0-9a-f]{18}-1\.scope" "$out"
check_match "step 2 ran in the agent's cgroup, as its user, OOM-first" "second uid=$job_uid oom=500 cgroup=/system\.slice/cloudjobs\.service" "$out"
check_eq "status_details.limits.steps_outside_slice" "[2]" "$(jq -c .status_details.limits.steps_outside_slice <<<"$answer")"
check_match "journal says step 2 runs outside the slice, and why" \
  "step 2 and any later step of this job run outside the job's slice cloudjobs-jobs-[0-9a-f]{18}\.slice, so its limits .* are not enforced on them: the agent is stopping" \
  "$(ct journalctl -u cloudjobs.service --no-pager -o cat "JOB_ID=$job")"
check_eq "no job slice left after the stop" "" "$(ct systemctl list-units --all --plain --no-legend 'cloudjobs-jobs-*.slice')"
[ "$stop_seconds" -ge 3 ] && ok "stop waited for both steps (${stop_seconds}s)" || bad "stop took ${stop_seconds}s: step 1 cannot have finished"

step "remove keeps state and config; purge leaves nothing"
ct rm -rf /etc/systemd/system/cloudjobs.service.d # the test's own drop-ins
ct systemctl daemon-reload
ct systemctl start cloudjobs.service || bad "start before remove failed"
ct env DEBIAN_FRONTEND=noninteractive apt-get remove -y cloudjobs >/dev/null 2>&1 || bad "apt-get remove failed"
check_eq "stopped by remove" inactive "$(ct systemctl is-active cloudjobs.service || true)"
ct test -d /var/lib/cloudjobs && ok "remove kept /var/lib/cloudjobs" || bad "remove deleted /var/lib/cloudjobs"
ct test -f /etc/cloudjobs/agent.ini && ok "remove kept agent.ini" || bad "remove deleted agent.ini"
ct getent passwd cloudjobs >/dev/null && ok "remove kept the user" || bad "remove deleted the user"
ct test -e /usr/bin/cloudjobs && bad "remove left /usr/bin/cloudjobs" || ok "executable gone"
ct env DEBIAN_FRONTEND=noninteractive apt-get purge -y cloudjobs >/dev/null 2>&1 || bad "apt-get purge failed"
check_eq "dpkg status" "" "$(ct dpkg-query -W -f='${Status}' cloudjobs 2>/dev/null || true)"
check_eq "user" "" "$(ct getent passwd cloudjobs || true)"
check_eq "group" "" "$(ct getent group cloudjobs || true)"
check_eq "no group membership left" "" "$(ct grep -l cloudjobs /etc/group /etc/gshadow || true)"
for path in /var/lib/cloudjobs /var/cache/cloudjobs /etc/cloudjobs /run/cloudjobs /lib/systemd/system/cloudjobs.service; do
  ct test -e "$path" && bad "purge left $path" || ok "no $path"
done
check_eq "systemd links left" "" "$(ct find /etc/systemd /var/lib/systemd -name '*cloudjobs*' 2>/dev/null || true)"

finish
