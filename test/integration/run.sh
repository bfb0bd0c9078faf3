#!/usr/bin/env bash
# Runs every integration test: lintian on the three packages, the amd64
# package under systemd in nspawn, the arm64 package in a qemu-user chroot.
# Each prints PASS, FAIL or SKIP (with the reason); CLOUDJOBS_REQUIRE_INTEGRATION=1
# turns a SKIP into a failure. Exit 1 when any test failed.
set -uo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
status=0
for test in lint-debs.sh nspawn-systemd.sh reboot-resume.sh self-update.sh foreign-arch.sh; do
  started=$(date +%s)
  "$HERE/$test" || status=1
  echo "   ($test: $(($(date +%s) - started))s)" >&2
done
exit "$status"
