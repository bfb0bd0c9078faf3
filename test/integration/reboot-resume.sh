#!/usr/bin/env bash
# Jobs that reboot, under a real systemd: a Debian bookworm container whose
# root persists across its own reboots (a private copy of the cached rootfs, no
# volatile overlay; /run is a fresh tmpfs per boot). systemd-nspawn exits with
# status 133 when the container reboots; the test boots the same root again.
# The reference cloud runs in a network namespace of its own that every boot
# of the container joins, so it outlives the reboots.
#
# 1. A 3-step job [mark /run, reboot handler, check the mark is gone] makes the
#    agent run `systemctl reboot`; the container reboots; the agent, started
#    by systemd in the new boot, resumes the job, which ends SUCCEEDED only
#    after step 3 ran in the new boot (the mark on /run is gone).
# 2. With jobs.reboot_command a no-op the reboot never happens: STATUS says
#    "rebooting for job X", then the job ends FAILED "reboot did not happen".
#
# Usage: test/integration/reboot-resume.sh [DEB]   (default build/cloudjobs_<v>_amd64.deb)
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
IT_NAME=reboot-resume
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
command -v ip >/dev/null || skip "ip (iproute2) missing for the cloud's network namespace"
if [ ! -s "$(rootfs_tarball amd64)" ] && ! command -v debootstrap >/dev/null; then
  skip "no cached rootfs at $(rootfs_tarball amd64) and no debootstrap to build it"
fi

UUID=7a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d
KEY=$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')
PORT=4002
NETNS=cloudjobs-rb-$$
WORK=$(mktemp -d /tmp/cloudjobs-it-rb.XXXXXX)
CLOUD_PID=''
BOOT_EXIT=''

cleanup() {
  if [ -n "$CLOUD_PID" ]; then kill -TERM "$CLOUD_PID" 2>/dev/null || true; wait "$CLOUD_PID" 2>/dev/null || true; fi
  stop_container
  ip netns delete "$NETNS" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

# boot_persistent DIR: boots DIR (changes persist) in $NETNS, $WORK as /mnt/host; sets CT_PID and CT_LEADER.
boot_persistent() {
  local dir=$1 child i state='' deadline
  CT_LOG=$(mktemp /tmp/cloudjobs-it-rb-nspawn.XXXXXX)
  systemd-nspawn -D "$dir" -b --register=no --keep-unit --network-namespace-path="/run/netns/$NETNS" \
    -M cloudjobs-rb --bind-ro="$WORK:/mnt/host" --console=pipe </dev/null >"$CT_LOG" 2>&1 &
  CT_PID=$!
  CT_LEADER=''
  for i in $(seq 1 200); do
    CT_LEADER=$(pgrep -P "$CT_PID" -x systemd | head -n1 || true)
    child=$(pgrep -P "$CT_PID" -x systemd-nspawn | head -n1 || true)
    if [ -z "$CT_LEADER" ] && [ -n "$child" ]; then CT_LEADER=$(pgrep -P "$child" -x systemd | head -n1 || true); fi
    [ -n "$CT_LEADER" ] && break
    kill -0 "$CT_PID" 2>/dev/null || { cat "$CT_LOG" >&2; fail "systemd-nspawn exited during boot"; }
    sleep 0.1
  done
  [ -n "$CT_LEADER" ] || { cat "$CT_LOG" >&2; fail "no systemd inside the container after 20s"; }
  deadline=$(($(date +%s) + 90))
  while [ "$(date +%s)" -lt "$deadline" ]; do
    state=$(timeout 90 nsenter -t "$CT_LEADER" -a systemctl is-system-running --wait 2>/dev/null || true)
    case "$state" in running|degraded) break ;; esac
    sleep 0.2
  done
  case "$state" in
    running|degraded) ;;
    *) cat "$CT_LOG" >&2; fail "container did not finish booting (state '$state')" ;;
  esac
}

# wait_for_container_exit SECONDS: waits for nspawn to end; sets BOOT_EXIT (133 means the container rebooted).
wait_for_container_exit() {
  local limit=$1 i
  for i in $(seq 1 $((limit * 5))); do kill -0 "$CT_PID" 2>/dev/null || break; sleep 0.2; done
  if kill -0 "$CT_PID" 2>/dev/null; then BOOT_EXIT=running; return 1; fi
  BOOT_EXIT=0
  wait "$CT_PID" || BOOT_EXIT=$?
  CT_PID=''
  rm -f "$CT_LOG"
}

# the cloud listens in the namespace the container boots into
ADMIN_VIA=(ip netns exec "$NETNS")
last_report() { admin GET "/patches?jobId=$1" | jq -c '.patches[-1].body'; }
status_text_matches() { show StatusText | grep -Eq -- "$1"; }

# reboot_job MARK: [mark /run, reboot handler, check the mark is gone]; steps 1 and 3 say the boot id.
reboot_job() {
  local mark=$1
  jq -cn --arg mark "$mark" '{version:"1.0", includeStdOut:true, steps:[
    {action:{name:"Mark /run", type:"runCommand", runAsUser:"root", input:{command:["/bin/sh","-c",
      ("echo marked > " + $mark + "; echo \"marked " + $mark + " in boot $(cat /proc/sys/kernel/random/boot_id)\"")]}}},
    {action:{name:"Reboot", type:"runHandler", runAsUser:"root", input:{handler:"reboot"}}},
    {action:{name:"Check", type:"runCommand", runAsUser:"root", input:{command:["/bin/sh","-c",
      ("if [ -e " + $mark + " ]; then echo \"" + $mark + " is still there: no reboot happened\" >&2; exit 1; fi; echo \"mark gone in boot $(cat /proc/sys/kernel/random/boot_id)\"; sleep 4")]}}}]}'
}

write_config() { # REBOOT_COMMAND REBOOT_TIMEOUT
  ct_install_agent_ini '[jobs]' 'allowed_users = root' "reboot_command = $1" "reboot_timeout = $2" '[logging]' 'level = debug'
}

step "rootfs (a private, persistent copy) and the cloud's network namespace"
ensure_rootfs amd64
mkdir -p "$WORK/root"
rootfs_extract "$(rootfs_tarball amd64)" "$WORK/root"
cp "$DEB" "$WORK/cloudjobs_amd64.deb"
"$ROOT/node_modules/.bin/esbuild" "$ROOT/test/cloud/main.ts" --bundle --platform=node --format=cjs \
  --log-level=warning --outfile="$WORK/reference-cloud.cjs"
ip netns add "$NETNS"
ip netns exec "$NETNS" ip link set lo up
ip netns exec "$NETNS" node "$WORK/reference-cloud.cjs" --port "$PORT" --device "$UUID:$KEY" > "$WORK/cloud.out" 2> "$WORK/cloud.err" &
CLOUD_PID=$!
wait_until 20 "the reference cloud" grep -q adminUrl "$WORK/cloud.out" || { cat "$WORK/cloud.err" >&2; fail "reference cloud did not start"; }
ok "cloud up in netns $NETNS"

step "boot 1: install, configure, start"
boot_persistent "$WORK/root"
boot1=$(ct cat /proc/sys/kernel/random/boot_id)
ok "booted (leader pid $CT_LEADER, boot id $boot1)"
out=$(ct env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends /mnt/host/cloudjobs_amd64.deb 2>&1) \
  || { echo "$out" >&2; fail "apt-get install failed"; }
check_eq "shipped reboot handler" "/usr/lib/cloudjobs/handlers/reboot" "$(ct sh -c 'ls /usr/lib/cloudjobs/handlers/reboot')"
printf '%s\n' "$KEY" > "$WORK/api-key"
ct install -m 0600 /mnt/host/api-key /etc/cloudjobs/api-key
write_config "systemctl reboot" "2m"
ct systemctl start cloudjobs.service && ok "agent started" || fail "systemctl start cloudjobs failed"
check_eq "RuntimeDirectoryPreserve" yes "$(show RuntimeDirectoryPreserve)"

step "job 1: [mark /run, reboot handler, check]: the agent reboots the container"
job1=$(queue_job "reboot-it" "$(reboot_job /run/cloudjobs-it-mark)")
check_match "queued job id" '^[0-9a-f-]{8,}$' "$job1"
if wait_for_container_exit 90; then ok "the container went down"; else bad "the container did not reboot within 90s"; fi
check_eq "systemd-nspawn exit status (133: the container rebooted)" 133 "$BOOT_EXIT"
check_eq "job status at the cloud while rebooting" IN_PROGRESS "$(job_status "$job1")"
rebooting=$(last_report "$job1")
check_match "report before the reboot" '^rebooting: step 2 \("Reboot"\) asked for a reboot; 2 of 3 steps done' "$(printf '%s' "$rebooting" | jq -r .reason)"
check_eq "status_details.rebooting" true "$(printf '%s' "$rebooting" | jq -r .status_details.rebooting)"
check_eq "executed_steps before the reboot" 2 "$(printf '%s' "$rebooting" | jq -r .executed_steps)"

step "boot 2: the same root; systemd starts the agent, which resumes the job"
boot_persistent "$WORK/root"
boot2=$(ct cat /proc/sys/kernel/random/boot_id)
ok "booted again (leader pid $CT_LEADER, boot id $boot2)"
if [ "$boot2" != "$boot1" ]; then ok "a new boot of the container"; else bad "the container's boot id did not change ($boot2)"; fi
check_eq "mark on /run after the reboot" absent "$(ct sh -c '[ -e /run/cloudjobs-it-mark ] && echo present || echo absent')"
wait_until 30 "STATUS 'resumed job reboot-it after reboot'" status_text_matches '^resumed job reboot-it after reboot' || true
check_match "StatusText while step 3 runs" '^resumed job reboot-it after reboot' "$(show StatusText)"
wait_until 60 "job 1 final" job_final "$job1" || true
check_eq "job 1 status" SUCCEEDED "$(job_status "$job1")"
final=$(last_report "$job1")
check_eq "final reason" "3 of 3 steps succeeded" "$(printf '%s' "$final" | jq -r .reason)"
check_eq "final executed_steps (both boots)" 3 "$(printf '%s' "$final" | jq -r .executed_steps)"
stdout=$(printf '%s' "$final" | jq -r .stdout)
# The unit's own /proc (ProtectProc=) shows the host kernel's boot_id, which a
# container reboot does not change: steps (and the agent) see the same id in
# both boots, so here it is the runtime_dir marker on the fresh /run that
# tells the reboot. nsenter sees nspawn's per-boot id ($boot1, $boot2).
check_match "step 1 ran before the reboot" 'marked /run/cloudjobs-it-mark in boot [0-9a-f-]{36}' "$stdout"
check_match "step 3 ran after it (the mark on /run was gone)" 'mark gone in boot [0-9a-f-]{36}' "$stdout"
check_eq "steps of the final report" '["Mark /run",0,"Reboot",194,"Check",0]' \
  "$(printf '%s' "$final" | jq -c '[.status_details.steps[] | .name, .exit_code]')"
check_match "a 'resumed after reboot' report" 'resumed after reboot' "$(admin GET "/patches?jobId=$job1" | jq -r '.patches[].body.reason')"
journal=$(ct journalctl -u cloudjobs.service -b --no-pager -o cat)
check_match "journal of boot 2" 'resumed job reboot-it after reboot 1: going on after step 2 \("Reboot"\)' "$journal"

step "job 2: the reboot never happens (reboot_command is a no-op)"
write_config "/bin/true" "8s"
ct systemctl restart cloudjobs.service
job2=$(queue_job "no-reboot-it" "$(reboot_job /run/cloudjobs-it-mark2)")
wait_until 30 "STATUS 'rebooting for job no-reboot-it'" status_text_matches '^rebooting for job no-reboot-it' || true
check_match "StatusText while waiting for the reboot" '^rebooting for job no-reboot-it' "$(show StatusText)"
status_out=$(ct cloudjobs status || true)
check_match "cloudjobs status" 'state: +rebooting \(rebooting for job no-reboot-it\)' "$status_out"
wait_until 60 "job 2 final" job_final "$job2" || true
check_eq "job 2 status" FAILED "$(job_status "$job2")"
check_match "job 2 reason" '^reboot did not happen: the device was still in the same boot 8s after the reboot was requested' \
  "$(last_report "$job2" | jq -r .reason)"
check_eq "job 2 executed_steps" 2 "$(last_report "$job2" | jq -r .executed_steps)"
check_eq "container still in boot 2" "$boot2" "$(ct cat /proc/sys/kernel/random/boot_id)"
check_eq "job 2's mark is still there (step 3 never ran)" present "$(ct sh -c '[ -e /run/cloudjobs-it-mark2 ] && echo present || echo absent')"

step "power off"
stop_container
finish
