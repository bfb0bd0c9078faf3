#!/usr/bin/env bash
# Runs every integration test: lintian on the three packages; the amd64
# package under systemd in nspawn on Debian bookworm and trixie; the arm64
# package in a qemu-user trixie chroot; the armhf package on Debian's nodejs in
# qemu-user bookworm and trixie chroots. Each prints PASS, FAIL or SKIP (with
# the reason); CLOUDJOBS_REQUIRE_INTEGRATION=1 turns a SKIP into a failure.
#
# Every process a test starts must end with it: each inherits the marker
# CLOUDJOBS_IT_RUN, and after the last test any process still carrying it
# is listed, killed and fails the run. (Processes inside the containers and
# chroots run with a clean environment; they end with their container or
# PID namespace.) Exit 1 when any test failed or left a process behind.
set -uo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
export CLOUDJOBS_IT_RUN="it-$$-$(od -An -N4 -tx1 /dev/urandom | tr -d ' \n')"
status=0
TESTS=(
  "lint-debs.sh"
  "nspawn-systemd.sh --suite bookworm"
  "nspawn-systemd.sh --suite trixie"
  "loop-death.sh"
  "reboot-resume.sh"
  "self-update.sh"
  "foreign-arch.sh --arch arm64 --suite trixie"
  "foreign-arch.sh --arch armhf --suite bookworm"
  "foreign-arch.sh --arch armhf --suite trixie"
)
# The trees the tests need, built side by side when missing (lib/rootfs.sh).
# shellcheck source=/dev/null
. "$HERE/lib/binfmt.sh"; . "$HERE/lib/rootfs.sh"
rootfs_prefetch $ROOTFS_ALL

for test in "${TESTS[@]}"; do
  started=$(date +%s)
  # shellcheck disable=SC2086 # a test and its arguments
  "$HERE"/$test || status=1
  echo "   ($test: $(($(date +%s) - started))s)" >&2
done

# leftover_pids: the processes that still carry this run's marker. The marker
# is no longer exported here, so the scan's own grep does not carry it, and
# this shell's /proc environ is the one it was started with.
leftover_pids() {
  grep -lsz -F "CLOUDJOBS_IT_RUN=$CLOUDJOBS_IT_RUN" /proc/[0-9]*/environ | cut -d/ -f3 | grep -vx "$$" || true
}
export -n CLOUDJOBS_IT_RUN
sleep 1 # a process that was told to stop in a test's trap gets a moment
left=$(leftover_pids)
if [ -n "$left" ]; then
  echo "FAIL integration: processes started by the tests are still running:" >&2
  # shellcheck disable=SC2086
  ps -o pid,ppid,etimes,args -p "$(echo $left | tr ' ' ,)" >&2 || true
  # shellcheck disable=SC2086
  kill -TERM $left 2>/dev/null || true
  sleep 2
  left=$(leftover_pids)
  # shellcheck disable=SC2086
  [ -z "$left" ] || kill -KILL $left 2>/dev/null || true
  status=1
else
  echo "PASS integration: no process of the tests outlived them" >&2
fi
exit "$status"
