#!/usr/bin/env bash
# `make bench`: builds the baselines next to the executables under test and
# runs every benchmark, printing the table and writing test/bench/RESULTS.md.
# Expects build/cloudjobs-linux-<arch> (make binaries) and, for figure 9, the
# .debs in build/ (the amd64 one also for the VM figures, test/vm/bench.sh).
# Arches without an executable are skipped with a warning.
# Usage: test/bench/run.sh [--only N,N...] [--arches x64,arm64,armv7]
source "$(dirname "$0")/../../src/build/lib.sh"
BENCH_SRC="$ROOT/test/bench"
# BENCH_OUT: somewhere else than build/bench, e.g. while others rebuild build/.
OUT="${BENCH_OUT:-$BUILD/bench}"
mkdir -p "$OUT"
ESBUILD="$ROOT/node_modules/.bin/esbuild"

# --arches x64,arm64 measures only those executables; the rest is passed to the harness.
arches=("${ARCHES[@]}")
args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --arches) [ $# -ge 2 ] || die "--arches needs a list, e.g. --arches x64,arm64"; IFS=, read -r -a arches <<<"$2"; shift 2 ;;
    *) args+=("$1"); shift ;;
  esac
done
for arch in "${arches[@]}"; do check_arch "$arch"; done

host=$(host_arch)
entries=()
for arch in "${arches[@]}"; do
  agent="$BUILD/cloudjobs-linux-$arch"
  if [ ! -x "$agent" ]; then
    echo "bench: $agent is missing (make binaries); skipping $arch" >&2
    continue
  fi
  # Measure a private copy: a rebuild of build/ during the run must not change what is measured.
  mkdir -p "$OUT/$arch"
  cp "$agent" "$OUT/$arch/cloudjobs.tmp" && mv "$OUT/$arch/cloudjobs.tmp" "$OUT/$arch/cloudjobs"
  agent="$OUT/$arch/cloudjobs"
  node_bin=$("$ROOT/src/build/fetch-node.sh" "$arch")
  # The baseline is made by the very pipeline that makes cloudjobs, from the same Node.
  # Both executables reach their measured path the same way (cp): how a file was written
  # changes how much of it the page cache maps in large folios, and so the RSS of figure 1.
  "$ROOT/src/build/sea.sh" "$arch" "$BENCH_SRC/baseline/idle.js" "$OUT/$arch/baseline-sea.built"
  cp "$OUT/$arch/baseline-sea.built" "$OUT/$arch/baseline-sea.tmp" && mv "$OUT/$arch/baseline-sea.tmp" "$OUT/$arch/baseline-sea"
  emulator='[]'
  if [ "$arch" != "$host" ]; then
    emulator="[\"$(pin "$arch" qemu)\", \"-L\", \"/usr/$(pin "$arch" triplet)\"]"
  fi
  entries+=("{\"arch\": \"$arch\", \"agent\": \"$agent\", \"node\": \"$node_bin\", \"baselineSea\": \"$OUT/$arch/baseline-sea\", \"nodeVersion\": \"$(pin "$arch" version)\", \"emulator\": $emulator}")
done
[ ${#entries[@]} -gt 0 ] || die "no executable to measure: run make binaries first"
(IFS=,; echo "[${entries[*]}]") >"$OUT/targets.json"

"$ESBUILD" "$BENCH_SRC/main.ts" --bundle --platform=node --format=cjs --target=node20 --log-level=warning --outfile="$OUT/bench.cjs"
"$ESBUILD" "$ROOT/test/cloud/main.ts" --bundle --platform=node --format=cjs --target=node20 --log-level=warning --outfile="$OUT/reference-cloud.cjs"

node "$OUT/bench.cjs" --root "$ROOT" --targets "$OUT/targets.json" --cloud-bundle "$OUT/reference-cloud.cjs" \
  --results "$BENCH_SRC/RESULTS.md" --build "$BUILD" --out "$OUT" "${args[@]}"

# The figures only a real kernel gives (disk writes, RSS in a Debian VM): a
# section of RESULTS.md of their own, after a full run (not after --only).
case " ${args[*]} " in
  *" --only "*) echo "bench: --only given; the VM figures (test/vm/bench.sh) are not measured" >&2 ;;
  *) "$ROOT/test/vm/bench.sh" --results "$BENCH_SRC/RESULTS.md" ;;
esac
