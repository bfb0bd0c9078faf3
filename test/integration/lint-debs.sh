#!/usr/bin/env bash
# lintian --pedantic over the three packages: any tag that is not overridden
# (with a comment saying why, in debian/lintian-overrides) fails.
#
# Usage: test/integration/lint-debs.sh [DEB...]   (default build/cloudjobs_<v>_{amd64,arm64,armhf}.deb)
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
IT_NAME=lintian
. "$HERE/lib/common.sh"

command -v lintian >/dev/null || skip "lintian missing (apt install lintian)"
if [ $# -gt 0 ]; then
  debs=("$@")
else
  debs=()
  for arch in amd64 arm64 armhf; do
    deb=$(built_deb "$arch")
    [ -f "$deb" ] || fail "missing $deb (run make deb)"
    debs+=("$deb")
  done
fi

step "lintian --pedantic on ${#debs[@]} package(s)"
# -I -E --pedantic: every tag down to pedantic and experimental ones
out=$(lintian --pedantic -I -E --fail-on error,warning,info,pedantic,experimental -j 2 "${debs[@]}" 2>&1) && rc=0 || rc=$?
tags=$(printf '%s\n' "$out" | grep -E '^[EWIPX]: ' || true)
if [ -n "$tags" ] || [ "$rc" -ne 0 ]; then
  printf '%s\n' "$out" | sed 's/^/  | /' >&2
  bad "lintian reported tags (exit $rc)"
else
  for deb in "${debs[@]}"; do ok "$(basename "$deb") lintian clean"; done
fi
finish
