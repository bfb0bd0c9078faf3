#!/usr/bin/env bash
# Runs every VM test (test/vm/*.sh): Debian booted in qemu (TCG) with its own
# kernel and initramfs, the amd64 .deb installed with apt, the reference cloud
# on the host's loopback. What only a real boot shows: a noexec /run, cgroup
# v2 under the distribution's systemd, power cuts, a clock without RTC.
# Each test prints PASS, FAIL or SKIP; CLOUDJOBS_REQUIRE_INTEGRATION=1 (CI)
# turns a SKIP into a failure. As in test/integration/run.sh, every process a
# test starts must end with it (marker CLOUDJOBS_IT_RUN). Exit 1 when any
# test failed or left a process behind.
# Usage: test/vm/run.sh [LANE...]   (default: all; a lane is ";"-separated
#        tests, e.g. "boot.sh --suite trixie;clock.sh --suite trixie")
set -uo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
export CLOUDJOBS_IT_RUN="vm-$$-$(od -An -N4 -tx1 /dev/urandom | tr -d ' \n')"
status=0
# Two lanes side by side (one VM each; a VM waits on its guest much of the
# time): the tests of a lane run one after another and share the disk on
# which the lane's first test installed the .deb.
# The 20 power cuts (one boot each) take about as long as all the rest
# together: 7 of them (every kind of moment at least once) end bookworm's
# lane, 13 (every kind at least twice) follow trixie's boot and limits tests,
# so that the lanes end together (a clean-clone run with 5 and 15: bookworm's
# lane 968 s, trixie's 1,120 s; a cut takes about 45 s).
LANES=(
  "boot.sh --suite bookworm;reboot.sh --suite bookworm;clock.sh --suite bookworm;limits.sh --suite bookworm;power-cut.sh --suite bookworm --cuts 7"
  "boot.sh --suite trixie;limits.sh --suite trixie;power-cut.sh --suite trixie --cuts 13"
)
# what issue 19 asks of the default lanes together
MIN_POWER_CUTS=20
if [ $# -gt 0 ]; then LANES=("$@"); MIN_POWER_CUTS=0; fi

# Both suites' amd64 trees, side by side when missing (cached; a failed build
# is retried, and reported, by the test that needs it).
# shellcheck source=/dev/null
. "$HERE/../integration/lib/binfmt.sh"; . "$HERE/../integration/lib/rootfs.sh"
rootfs_prefetch amd64:bookworm amd64:trixie

# the disks with the .deb installed, shared by the tests of this run
export VM_RUN_CACHE
VM_RUN_CACHE=$(mktemp -d /tmp/cloudjobs-vm-run.XXXXXX)
trap 'rm -rf "$VM_RUN_CACHE"' EXIT
run_started=$(date +%s)
# A test that runs longer than this is stopped and fails (TERM, then KILL): a
# hung guest must end as a FAIL with its log, not outlast CI's time limit.
VM_TEST_TIMEOUT=${VM_TEST_TIMEOUT:-1800}
# run_lane LANE: its tests (";"-separated) in order; 1 when any failed.
run_lane() {
  local test started rc=0
  IFS=';' read -r -a tests <<<"$1"
  for test in "${tests[@]}"; do
    started=$(date +%s)
    # shellcheck disable=SC2086 # a test and its arguments
    timeout -k 30 "$VM_TEST_TIMEOUT" "$HERE"/$test
    case $? in
      0) ;;
      124) rc=1; echo "FAIL ${test%% *}: stopped after ${VM_TEST_TIMEOUT}s" >&2 ;;
      *) rc=1 ;;
    esac
    echo "   ($test: $(($(date +%s) - started))s)" >&2
  done
  return "$rc"
}
lane_pids=()
for i in "${!LANES[@]}"; do
  run_lane "${LANES[$i]}" > "$VM_RUN_CACHE/lane-$i.log" 2>&1 &
  lane_pids+=("$!")
done
for i in "${!LANES[@]}"; do
  wait "${lane_pids[$i]}" || status=1
  echo "----- lane $((i + 1)): ${LANES[$i]}" >&2
  cat "$VM_RUN_CACHE/lane-$i.log" >&2
done
echo "   (VM tests: $(($(date +%s) - run_started))s)" >&2
# each power-cut.sh ends with "POWER-CUTS SUITE N (KIND xN, ...)"
cuts=$(cat "$VM_RUN_CACHE"/lane-*.log | awk '$1 == "POWER-CUTS" { n += $3 } END { print n + 0 }')
if [ "$cuts" -lt "$MIN_POWER_CUTS" ]; then
  echo "FAIL vm: $cuts power cuts in all, fewer than $MIN_POWER_CUTS" >&2
  status=1
elif [ "$MIN_POWER_CUTS" -gt 0 ]; then
  echo "PASS vm: $cuts power cuts in all, over two VMs:" >&2
  grep -h '^ *POWER-CUTS' "$VM_RUN_CACHE"/lane-*.log >&2
fi

leftover_pids() {
  grep -lsz -F "CLOUDJOBS_IT_RUN=$CLOUDJOBS_IT_RUN" /proc/[0-9]*/environ | cut -d/ -f3 | grep -vx "$$" || true
}
export -n CLOUDJOBS_IT_RUN
sleep 1
left=$(leftover_pids)
if [ -n "$left" ]; then
  echo "FAIL vm: processes started by the tests are still running:" >&2
  # shellcheck disable=SC2086
  ps -o pid,ppid,etimes,args -p "$(echo $left | tr ' ' ,)" >&2 || true
  # shellcheck disable=SC2086
  kill -KILL $left 2>/dev/null || true
  status=1
else
  echo "PASS vm: no process of the tests outlived them" >&2
fi
exit "$status"
