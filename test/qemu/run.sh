#!/usr/bin/env bash
# qemu-user smoke test of the arm builds (issue 2 "Done when", issue 15):
#   arm64  build/cloudjobs-linux-arm64 under qemu-aarch64 with only the cross
#          packages' glibc
#   armhf  build/bundle/armhf/cloudjobs.cjs run by Debian's armhf nodejs (from
#          the bookworm armhf rootfs of the integration tests: its apt cache,
#          unpacked) under qemu-arm, the addon next to the bundle
# each: `--version`, `exec` of a job that succeeds (exit 0) and of one that
# fails (exit 1); then prove the datagram addon loads through the same loader
# and delivers to a socket path and an abstract @name
# (test/qemu/datagram-probe.ts, built the same way).
# Usage: test/qemu/run.sh [ARCH...]   Needs: make binaries build/bundle/armhf/cloudjobs.cjs
source "$(cd "$(dirname "$0")/../.." && pwd)/src/build/lib.sh"
cd "$ROOT"
[ $# -gt 0 ] || set -- arm64 armhf
PYTHON=/usr/bin/python3; [ -x "$PYTHON" ] || PYTHON=python3
version=$(package_version)
tmp=$(mktemp -d "${TMPDIR:-/tmp}/cloudjobs-qemu.XXXXXX")
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$tmp"; }
trap cleanup EXIT
failures=0
pass() { echo "ok   $*"; }
fail() { echo "FAIL $*"; failures=$((failures + 1)); }

mkdir -m 0755 "$tmp/work"
user=$(id -un); [ "$user" = root ] && user=nobody
printf '[jobs]\nrun_as_user = %s\nwork_dir = %s\n[agent]\nstate_dir = %s/state\nruntime_dir = %s/run\n' \
  "$user" "$tmp/work" "$tmp" "$tmp" >"$tmp/agent.ini"

# expect NAME WANT_RC WANT_TEXT CMD...: runs CMD, checks its exit code and that stdout contains WANT_TEXT.
expect() {
  local name=$1 want_rc=$2 want=$3; shift 3
  local out rc=0
  out=$("$@" 2>"$tmp/stderr") || rc=$?
  if [ "$rc" = "$want_rc" ] && [[ "$out" == *"$want"* ]]; then pass "$name"
  else fail "$name: exit $rc (want $want_rc), stdout: ${out:-<empty>}, stderr: $(tail -3 "$tmp/stderr")"; fi
}

# receive ADDRESS COUNT: starts the python receiver in the background, waits until it is bound.
receive() {
  "$PYTHON" test/qemu/receive-datagrams.py "$1" "$2" 300 >"$tmp/received" 2>"$tmp/receiver.err" &
  pids+=($!)
  for _ in $(seq 100); do grep -q '^ready$' "$tmp/received" 2>/dev/null && return 0; sleep 0.05; done
  fail "receiver on $1 did not start: $(cat "$tmp/receiver.err")"; return 1
}

# debian_node: unpacks Debian's armhf nodejs and the libraries it needs from
# the cached bookworm armhf rootfs' apt cache into $tmp/node, with the rootfs'
# own libraries (glibc, libstdc++) next to them; sets NODE_SYSROOT to it (qemu
# -L: Debian's node also opens /usr/share/nodejs/... by absolute path).
debian_node() {
  local lib=$ROOT/test/integration/lib deb base
  # shellcheck source=/dev/null
  . "$lib/binfmt.sh"; . "$lib/rootfs.sh"; . "$lib/nspawn.sh" # not common.sh: its fail() exits
  ensure_rootfs armhf bookworm
  base=$(extracted_rootfs armhf bookworm)
  NODE_SYSROOT=$tmp/node
  for deb in "$base"/var/cache/apt/archives/*.deb; do dpkg-deb -x "$deb" "$NODE_SYSROOT"; done
  [ -x "$NODE_SYSROOT/usr/bin/node" ] || { fail "armhf: no nodejs in $base/var/cache/apt/archives"; return 1; }
  cp -an "$base/usr/lib/arm-linux-gnueabihf/." "$NODE_SYSROOT/usr/lib/arm-linux-gnueabihf/"
  cp -an "$base"/usr/lib/ld-linux-armhf.so.* "$NODE_SYSROOT/usr/lib/"
  [ -e "$NODE_SYSROOT/lib" ] || ln -s usr/lib "$NODE_SYSROOT/lib"
}

# on_target ARCH PROGRAM ARGS...: arm64 runs the executable PROGRAM; armhf runs
# the bundle PROGRAM with Debian's node, both under qemu-user.
on_target() {
  local arch=$1; shift
  if [ "$arch" = armhf ]; then
    qemu-arm-static -L "$NODE_SYSROOT" "$NODE_SYSROOT/usr/bin/node" "$@"
  else
    run_target "$arch" "$@"
  fi
}

for arch in "$@"; do
  if [ "$arch" = armhf ]; then
    exe=build/bundle/armhf/cloudjobs.cjs runtime="system nodejs"
    [ -f "$exe" ] || { fail "armhf: $exe missing (make build/bundle/armhf/cloudjobs.cjs)"; continue; }
    debian_node || continue
    # the addon next to the bundle, as the package installs it
    cp build/native/armhf/datagram.node build/bundle/armhf/datagram.node
  else
    check_arch "$arch"
    exe="build/cloudjobs-linux-$arch" runtime="single executable"
    if [ ! -x "$exe" ]; then fail "$arch: $exe missing (run make binaries)"; continue; fi
  fi
  expect "$arch: --version" 0 "cloudjobs $version (node v" on_target "$arch" "$exe" --version
  expect "$arch: --version names the runtime" 0 ", $runtime)" on_target "$arch" "$exe" --version
  expect "$arch: exec of a job that succeeds" 0 "SUCCEEDED: 2 of 2 steps succeeded" \
    on_target "$arch" "$exe" --config "$tmp/agent.ini" exec test/qemu/job-ok.json
  expect "$arch: exec of a job that fails" 1 "FAILED" \
    on_target "$arch" "$exe" --config "$tmp/agent.ini" exec test/qemu/job-fail.json

  # The addon of this arch through loadDatagramSender: inside a SEA, or next to the bundle.
  node src/build/bundle.mjs "$arch" test/qemu/datagram-probe.ts "build/probe/$arch/probe.cjs"
  if [ "$arch" = armhf ]; then
    probe=build/probe/armhf/probe.cjs
    cp build/native/armhf/datagram.node build/probe/armhf/datagram.node
  else
    probe="build/probe/$arch/probe"
    src/build/sea.sh "$arch" "build/probe/$arch/probe.cjs" "$probe"
  fi
  for address in "$tmp/notify-$arch.sock" "@cloudjobs-qemu-$$-$arch"; do
    receive "$address" 1 || continue
    text="READY=1 STATUS=from $arch to $address"
    expect "$arch: datagram to $address" 0 "" on_target "$arch" "$probe" send "$address" "$text" "$tmp/run-$arch"
    wait "${pids[-1]}" || true
    got=$("$PYTHON" -c 'import sys; sys.stdout.write(bytes.fromhex(sys.argv[1]).decode())' "$(tail -n 1 "$tmp/received")")
    if [ "$got" = "$text" ]; then pass "$arch: receiver got exactly the datagram"
    else fail "$arch: receiver got '${got}', want '$text' ($(cat "$tmp/receiver.err"))"; fi
  done
done

if [ "$failures" -gt 0 ]; then echo "qemu smoke test: $failures failure(s)"; exit 1; fi
echo "qemu smoke test: all passed ($*)"
