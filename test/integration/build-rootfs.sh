#!/usr/bin/env bash
# Builds the cached root filesystems the tests boot (lib/rootfs.sh), side by
# side, those missing only: `make rootfs`, and `make test` in the background
# while its first suites run. Usage: build-rootfs.sh [ARCH:SUITE...]
# (default: every tree a test uses). Exit 1 when a tree could not be built.
set -uo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=/dev/null
. "$HERE/lib/binfmt.sh"; . "$HERE/lib/rootfs.sh"
started=$(date +%s)
# shellcheck disable=SC2086 # the default list is words
[ $# -gt 0 ] || set -- $ROOTFS_ALL
rootfs_prefetch "$@"
status=0
for spec in "$@"; do
  [ -s "$(rootfs_tarball "${spec%:*}" "${spec#*:}")" ] || { echo "rootfs: no $spec tree" >&2; status=1; }
done
echo "rootfs: $* ready after $(($(date +%s) - started))s" >&2
exit "$status"
