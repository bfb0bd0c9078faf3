#!/usr/bin/env bash
# Builds the single executables: build/cloudjobs-linux-<arch> for each ARCH
# (default x64 arm64; armhf has no single executable, only a bundle), and
# build/cloudjobs, a copy of the host's.
# Each step is skipped when its output is newer than its inputs, so after a
# TypeScript change only the bundle, blob and injection run again.
# Usage: src/build/binaries.sh [ARCH...]     (src/build/binaries.sh host: only the host's)
source "$(dirname "$0")/lib.sh"
host=$(host_arch)
[ $# -gt 0 ] || set -- "${ARCHES[@]}"
[ "$*" = host ] && set -- "$host"
for arch in "$@"; do check_arch "$arch"; done
"$ROOT/src/build/addon.sh" "$@"
for arch in "$@"; do
  node "$ROOT/src/build/bundle.mjs" "$arch"
  "$ROOT/src/build/sea.sh" "$arch"
done
for arch in "$@"; do
  if [ "$arch" = "$host" ] && ! newer "$BUILD/cloudjobs" "$BUILD/cloudjobs-linux-$host"; then
    cp "$BUILD/cloudjobs-linux-$host" "$BUILD/cloudjobs.tmp"
    mv "$BUILD/cloudjobs.tmp" "$BUILD/cloudjobs"
  fi
done
