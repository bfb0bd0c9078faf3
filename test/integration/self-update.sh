#!/usr/bin/env bash
# Jobs that update or restart the agent itself, under a real systemd (nspawn):
# an upgrade by `dpkg -i` and a downgrade by `apt-get install ./file.deb` from a
# job, `systemctl restart cloudjobs` from a job (cut and reported as cut), a
# restart from outside (handed over after the running step), a stop from
# outside (drains), and the forgery of issue 21 (a process of user `daemon`
# named `systemctl` carrying the job's CLOUDJOBS_JOB_ID changes nothing: only
# systemd's own restart job is believed). Each checks dpkg's status, the
# running agent's version and pid, and that the cloud got exactly one final
# report, from the agent that ran the job's last step.
#
# Usage: test/integration/self-update.sh [OLD_DEB NEW_DEB]
#   default: build/cloudjobs_<v>-1_amd64.deb as the old package, and builds the
#   same tree as version <v>+up1 (make deb VERSION=..., gzip for speed).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
IT_NAME=self-update
. "$HERE/lib/common.sh"
. "$HERE/lib/binfmt.sh"
. "$HERE/lib/rootfs.sh"
. "$HERE/lib/nspawn.sh"
. "$HERE/lib/cloud-admin.sh"

why=$(nspawn_unusable)
[ -z "$why" ] || skip "$why"
if [ ! -s "$(rootfs_tarball amd64)" ] && ! command -v debootstrap >/dev/null; then
  skip "no cached rootfs at $(rootfs_tarball amd64) and no debootstrap to build it"
fi

BASE=$(package_version)
NEWER="$BASE+up1"
if [ $# -eq 2 ]; then
  OLD_DEB=$(realpath "$1") NEW_DEB=$(realpath "$2")
else
  # the release package as the old one (make integration built it), and the same tree as $NEWER
  OLD_DEB=$(built_deb amd64)
  [ -f "$OLD_DEB" ] || fail "no $OLD_DEB (run make deb ARCH=amd64 first)"
  step "build $NEWER (make deb VERSION=$NEWER)"
  make -C "$ROOT" --no-print-directory deb ARCH=amd64 VERSION="$NEWER" CLOUDJOBS_DEB_COMPRESS=gzip >/dev/null
  NEW_DEB="$ROOT/build/cloudjobs_${NEWER}-1_amd64.deb"
fi
OLD_V=$(dpkg-deb -f "$OLD_DEB" Version) NEW_V=$(dpkg-deb -f "$NEW_DEB" Version)
[ "$OLD_V" != "$NEW_V" ] || fail "both packages are version $OLD_V"

UUID=7a1c2d3e-4b5a-4c6d-8e7f-0a1b2c3d4e5f
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

step "rootfs and boot"
ensure_rootfs amd64
DIR=$(extracted_rootfs amd64)
cp "$OLD_DEB" "$WORK/old.deb"
cp "$NEW_DEB" "$WORK/new.deb"
"$ROOT/node_modules/.bin/esbuild" "$ROOT/test/cloud/main.ts" --bundle --platform=node --format=cjs \
  --log-level=warning --outfile="$WORK/reference-cloud.cjs"
boot_container "$DIR" "$WORK"
ok "booted (leader pid $CT_LEADER)"

# literal TEXT: TEXT as an extended regex that matches only itself (versions hold '+' and '.').
literal() { printf '%s' "$1" | sed 's/[][\.*^$+?(){}|/]/\\&/g'; }
# finals JOB: how many final reports the cloud received for JOB.
finals() {
  admin GET "/patches?jobId=$1" \
    | jq '[.patches[] | select((.body.status // "") | IN("SUCCEEDED","FAILED","TIMED_OUT","CANCELED","REJECTED"))] | length'
}
final_body() { admin GET "/patches?jobId=$1" | jq -c '[.patches[] | select(.body.status == "SUCCEEDED" or .body.status == "FAILED")][-1].body'; }
final_details() { admin GET "/patches?jobId=$1" | jq -c '[.patches[] | select(.body.status == "SUCCEEDED" or .body.status == "FAILED")][-1].body.status_details'; }
dpkg_status() { ct dpkg-query -W -f='${Status} ${Version}' cloudjobs 2>/dev/null || true; }
running_version() { ct cloudjobs status --json 2>/dev/null | jq -r .agentVersion; }
main_pid() { show MainPID; }
is_active() { [ "$(show ActiveState)" = active ]; }
main_pid_is_not() { local p; p=$(main_pid); [ "$p" != "$1" ] && [ "$p" != 0 ] && is_active; }
# step JSON: one root runCommand step (commas split words, as AWS does).
step_json() { jq -cn --arg n "$1" --arg c "$2" '{name:$n, type:"runCommand", input:{command:$c}, runAsUser:"root", allowStdErr:50}'; }
job_doc() { jq -cn --argjson s "$(printf '%s\n' "$@" | jq -s .)" '{version:"1.0", includeStdOut:true, steps:$s}'; }

# expect_update NAME JOB OLD_PID WANT_VERSION: the checks every scenario shares.
expect_update() {
  local name=$1 job=$2 old_pid=$3 want=$4 started
  started=$(date +%s)
  wait_until 90 "$name: job SUCCEEDED" job_is "$job" SUCCEEDED || true
  check_eq "$name: job status" SUCCEEDED "$(job_status "$job")"
  echo "  ($name: final after $(($(date +%s) - started))s)" >&2
  check_eq "$name: dpkg status" "install ok installed ${want}-1" "$(dpkg_status)"
  wait_until 30 "$name: a new agent" main_pid_is_not "$old_pid" || true
  local pid
  pid=$(main_pid)
  [ "$pid" != "$old_pid" ] && ok "$name: new agent pid $pid (was $old_pid)" || bad "$name: agent pid still $old_pid"
  wait_until 20 "$name: status file of version $want" sh -c "[ \"\$(nsenter -t $CT_LEADER -a cloudjobs status --json 2>/dev/null | jq -r .pid)\" = $pid ]" || true
  check_eq "$name: running agent version" "$want" "$(running_version)"
  sleep 2 # a second final would have arrived by now
  check_eq "$name: final reports at the cloud" 1 "$(finals "$job")"
  check_eq "$name: NRestarts (no crash restart)" 0 "$(show NRestarts)"
}

step "install $OLD_V with apt and start it against the reference cloud"
ct env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends /mnt/host/old.deb >/dev/null 2>&1 || fail "apt-get install failed"
ct_start_cloud
ct_install_agent_ini '[jobs]' 'allowed_users = root' '[agent]' 'drain_timeout = 60s' '[logging]' 'level = debug'
# This test starts the agent more often than the unit's StartLimitBurst=5 per
# 10 minutes allows (a fleet does not update 8 times in 10 minutes).
ct mkdir -p /etc/systemd/system/cloudjobs.service.d
printf '[Unit]\nStartLimitBurst=100\n[Service]\nTimeoutStartSec=30s\n' > "$WORK/it.conf"
ct cp /mnt/host/it.conf /etc/systemd/system/cloudjobs.service.d/it.conf
ct systemctl daemon-reload
ct systemctl start cloudjobs.service || fail "systemctl start failed"
check_eq "running agent version" "${OLD_V%-1}" "$(running_version)"

step "upgrade by dpkg -i from a job; the next step runs on the new agent"
pid=$(main_pid)
job=$(queue_job "Upgrade by dpkg" "$(job_doc "$(step_json Upgrade 'dpkg,-i,/mnt/host/new.deb')" "$(step_json Version 'cloudjobs,--version')")")
expect_update "dpkg -i" "$job" "$pid" "${NEW_V%-1}"
check_match "dpkg -i: the later step ran on the new executable" "$(literal "cloudjobs ${NEW_V%-1} ")" "$(admin GET "/jobs/$job" | jq -r .stdout)"
details=$(final_details "$job")
check_eq "dpkg -i: versions in status_details" "${OLD_V%-1} -> ${NEW_V%-1}" "$(printf '%s' "$details" | jq -r '"\(.agent_version_from) -> \(.agent_version_to)"')"
check_match "dpkg -i: history on the new agent" "Upgrade by dpkg" "$(ct cloudjobs history 2>&1 || true)"

step "downgrade by apt-get install ./file.deb from a job"
pid=$(main_pid)
job=$(queue_job "Downgrade by apt" "$(job_doc "$(step_json Downgrade 'apt-get,install,-y,--allow-downgrades,/mnt/host/old.deb')" "$(step_json Version 'cloudjobs,--version')")")
expect_update "apt-get downgrade" "$job" "$pid" "${OLD_V%-1}"
check_match "apt-get downgrade: the later step ran on the old version's executable" "$(literal "cloudjobs ${OLD_V%-1} ")" "$(admin GET "/jobs/$job" | jq -r .stdout)"

step "systemctl restart cloudjobs from a job"
pid=$(main_pid)
job=$(queue_job "Restart agent" "$(job_doc "$(step_json Restart 'systemctl,restart,cloudjobs')" "$(step_json After 'echo,after the restart')")")
expect_update "systemctl restart" "$job" "$pid" "${OLD_V%-1}"
out=$(admin GET "/jobs/$job" | jq -r .stdout)
check_match "systemctl restart: the step is reported cut, with the reason" "$(literal '[cut: the step restarts the agent (systemctl restart cloudjobs); systemd job ')[0-9]+ \\(restart cloudjobs.service\\)" "$out"
check_eq "systemctl restart: the cut step has no exit code" null "$(final_details "$job" | jq -r '.steps[0].exit_code')"
check_match "systemctl restart: the next step ran" 'after the restart' "$out"

step "a restart from outside while a job runs: the running step ends, the rest runs in the new agent"
pid=$(main_pid)
job=$(queue_job "Slow job" "$(job_doc "$(step_json Slow 'sh,-c,sleep 5; echo one')" "$(step_json Two 'echo,two')")")
wait_until 20 "job IN_PROGRESS" job_is "$job" IN_PROGRESS || true
sleep 1
ct systemctl --no-block restart cloudjobs.service
wait_until 60 "job SUCCEEDED" job_is "$job" SUCCEEDED || true
out=$(admin GET "/jobs/$job" | jq -r .stdout)
check_match "outside restart: the running step ran to its end" 'one' "$out"
check_match "outside restart: the next step ran" 'two' "$out"
wait_until 30 "a new agent" main_pid_is_not "$pid" || true
check_eq "outside restart: final reports" 1 "$(finals "$job")"
check_eq "outside restart: resumed in the new agent" true "$(final_details "$job" | jq -r .resumed_after_restart)"

step "a stop from outside while a job runs drains"
job=$(queue_job "Slow job" "$(job_doc "$(step_json Slow 'sh,-c,sleep 5; echo drained')")")
wait_until 20 "job IN_PROGRESS" job_is "$job" IN_PROGRESS || true
sleep 1
ct systemctl --no-block stop cloudjobs.service
wait_until 60 "job SUCCEEDED" job_is "$job" SUCCEEDED || true
check_match "outside stop: the job ran to its end" 'drained' "$(admin GET "/jobs/$job" | jq -r .stdout)"
check_eq "outside stop: final reports" 1 "$(finals "$job")"
check_eq "outside stop: not resumed" null "$(final_details "$job" | jq -r .resumed_after_restart)"
wait_until 30 "the agent stopped" sh -c "[ \"\$(nsenter -t $CT_LEADER -a systemctl show -p ActiveState --value cloudjobs.service)\" = inactive ]" || true
ct systemctl start cloudjobs.service || fail "systemctl start failed"

step "a forged 'systemctl restart cloudjobs' of user daemon with the job's id, then a real restart: the failing step is reported FAILED"
pid=$(main_pid)
job=$(queue_job "Flash" "$(job_doc "$(step_json Flash 'sh,-c,sleep 8; echo bad >&2; exit 3')" "$(step_json Flashed 'echo,FLASHED')")")
wait_until 20 "job IN_PROGRESS" job_is "$job" IN_PROGRESS || true
ct setpriv --reuid=daemon --regid=daemon --clear-groups env -i CLOUDJOBS_JOB_ID="$job" \
  bash -c 'exec -a systemctl bash -c "sleep 60; :" restart cloudjobs' </dev/null >/dev/null 2>&1 &
FORGED=$!
sleep 1
ct systemctl --no-block restart cloudjobs.service
wait_until 60 "job FAILED" job_is "$job" FAILED || true
body=$(final_body "$job")
check_eq "forgery: job status" FAILED "$(job_status "$job")"
check_eq "forgery: exit code of the failing step" 3 "$(printf '%s' "$body" | jq -r .exit_code)"
check_eq "forgery: the next step did not run" 1 "$(printf '%s' "$body" | jq -r .executed_steps)"
check_eq "forgery: final reports" 1 "$(finals "$job")"
if printf '%s' "$body" | jq -r .stdout | grep -q FLASHED; then bad "forgery: FLASHED ran"; else ok "forgery: FLASHED never ran"; fi
kill "$FORGED" 2>/dev/null || true
ct pkill -KILL -u daemon 2>/dev/null || true
wait_until 30 "a new agent" main_pid_is_not "$pid" || true

# broken DEB VERSION WHAT: NEW_DEB repacked as VERSION with /usr/bin/cloudjobs exiting 1 at
# start (WHAT=start) or with a postinst that exits 1 (WHAT=postinst). Small (no executable).
broken() {
  local tree="$WORK/broken-$3"
  rm -rf "$tree" && dpkg-deb -R "$NEW_DEB" "$tree"
  printf '#!/bin/sh\necho "cloudjobs: broken test build" >&2\nexit 1\n' > "$tree/usr/bin/cloudjobs"
  sed -i "s/^Version: .*/Version: $2/" "$tree/DEBIAN/control"
  if [ "$3" = postinst ]; then sed -i 's/^set -e$/set -e\necho "postinst: failing on purpose" >\&2; exit 1/' "$tree/DEBIAN/postinst"; fi
  (cd "$tree" && find . -path ./DEBIAN -prune -o -type f -print0 | xargs -0 md5sum | sed 's| \./| |' > DEBIAN/md5sums)
  dpkg-deb --root-owner-group -Zgzip --build "$tree" "$WORK/$1" >/dev/null
}
handler_job() { # NAME DEB_IN_HOST_DIR: a self-update step then a version step
  local sha
  sha=$(sha256sum "$WORK/$2" | cut -c1-64)
  jq -cn --arg deb "/mnt/host/$2" --arg sha "$sha" --argjson v "$(step_json Version 'cloudjobs,--version')" \
    '{version:"1.0", includeStdOut:true, steps:[{name:"Self-update", type:"runHandler", input:{handler:"self-update", args:[$deb, $sha, "20"]}, runAsUser:"root", allowStdErr:50}, $v]}'
}

step "self-update handler: upgrade, with the operator's copy of the running package for rollback"
ct install -D -m 0600 /mnt/host/old.deb "/var/cache/cloudjobs/packages/cloudjobs_${OLD_V}.deb"
pid=$(main_pid)
job=$(queue_job "Self-update" "$(handler_job x new.deb)")
expect_update "self-update" "$job" "$pid" "${NEW_V%-1}"
body=$(final_body "$job")
check_eq "self-update: package versions" "$OLD_V -> $NEW_V" "$(printf '%s' "$body" | jq -r '"\(.status_details.package_version_from) -> \(.status_details.package_version_to)"')"
check_match "self-update: the later step ran on the new agent" "$(literal "cloudjobs ${NEW_V%-1} ")" "$(printf '%s' "$body" | jq -r .stdout)"
check_eq "self-update: the new package kept for the next rollback" "$NEW_V" "$(ct dpkg-deb -f "/var/cache/cloudjobs/packages/cloudjobs_${NEW_V}.deb" Version)"

step "self-update handler: a new version that exits at start is rolled back"
broken broken-start.deb "${BASE}+broken1-1" start
pid=$(main_pid)
job=$(queue_job "Self-update broken start" "$(handler_job x broken-start.deb)")
wait_until 120 "job FAILED" job_is "$job" FAILED || true
body=$(final_body "$job")
check_eq "rollback: job status" FAILED "$(job_status "$job")"
check_match "rollback: reason" "^$(literal "rolled back to $NEW_V: ")" "$(printf '%s' "$body" | jq -r .reason)"
check_eq "rollback: dpkg status" "install ok installed $NEW_V" "$(dpkg_status)"
wait_until 30 "rollback: agent active" is_active || true
check_eq "rollback: running agent version" "${NEW_V%-1}" "$(running_version)"
check_eq "rollback: final reports" 1 "$(finals "$job")"
check_eq "rollback: the step after the update did not run" 1 "$(printf '%s' "$body" | jq -r .executed_steps)"

step "self-update handler: a postinst that exits 1 leaves the old agent and reports dpkg's output"
broken broken-postinst.deb "${BASE}+broken2-1" postinst
job=$(queue_job "Self-update broken postinst" "$(handler_job x broken-postinst.deb)")
wait_until 120 "job FAILED" job_is "$job" FAILED || true
body=$(final_body "$job")
check_eq "postinst: job status" FAILED "$(job_status "$job")"
check_match "postinst: dpkg's output reported" 'postinst: failing on purpose' "$(printf '%s' "$body" | jq -r .stderr)"
check_eq "postinst: dpkg status" "install ok installed $NEW_V" "$(dpkg_status)"
wait_until 30 "postinst: agent active" is_active || true
check_eq "postinst: running agent version" "${NEW_V%-1}" "$(running_version)"
check_eq "postinst: final reports" 1 "$(finals "$job")"

finish
