#!/usr/bin/env bash
# qemu-user smoke test of the arm single executables (issue 2 "Done when"):
# for each ARCH (default arm64 armv7) run build/cloudjobs-linux-<arch> under
# qemu-user with only the cross packages' glibc: `--version`, `exec` of a job
# that succeeds (exit 0) and of one that fails (exit 1); then prove the
# embedded datagram addon loads in that arch's SEA and delivers to a socket
# path and an abstract @name (test/qemu/datagram-probe.ts, built the same way).
# Usage: test/qemu/run.sh [ARCH...]      Needs: make binaries (or src/build/binaries.sh).
source "$(cd "$(dirname "$0")/../.." && pwd)/src/build/lib.sh"
cd "$ROOT"
[ $# -gt 0 ] || set -- arm64 armv7
PYTHON=/usr/bin/python3; [ -x "$PYTHON" ] || PYTHON=python3
version=$(node -p 'require("./package.json").version')
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
  "$PYTHON" test/qemu/receive-datagrams.py "$1" "$2" 30 >"$tmp/received" 2>"$tmp/receiver.err" &
  pids+=($!)
  for _ in $(seq 100); do grep -q '^ready$' "$tmp/received" 2>/dev/null && return 0; sleep 0.05; done
  fail "receiver on $1 did not start: $(cat "$tmp/receiver.err")"; return 1
}

for arch in "$@"; do
  check_arch "$arch"
  exe="build/cloudjobs-linux-$arch"
  if [ ! -x "$exe" ]; then fail "$arch: $exe missing (run make binaries)"; continue; fi
  expect "$arch: --version" 0 "cloudjobs $version" run_target "$arch" "$exe" --version
  expect "$arch: exec of a job that succeeds" 0 "SUCCEEDED: 2 of 2 steps succeeded" \
    run_target "$arch" "$exe" --config "$tmp/agent.ini" exec test/qemu/job-ok.json
  expect "$arch: exec of a job that fails" 1 "FAILED" \
    run_target "$arch" "$exe" --config "$tmp/agent.ini" exec test/qemu/job-fail.json

  # The addon inside a SEA of this arch, through loadDatagramSender.
  probe="build/probe/$arch/probe"
  node src/build/bundle.mjs "$arch" test/qemu/datagram-probe.ts "build/probe/$arch/probe.cjs"
  src/build/sea.sh "$arch" "build/probe/$arch/probe.cjs" "$probe"
  for address in "$tmp/notify-$arch.sock" "@cloudjobs-qemu-$$-$arch"; do
    receive "$address" 1 || continue
    text="READY=1 STATUS=from $arch to $address"
    expect "$arch: datagram to $address" 0 "" run_target "$arch" "$probe" send "$address" "$text" "$tmp/run-$arch"
    wait "${pids[-1]}" || true
    got=$("$PYTHON" -c 'import sys; sys.stdout.write(bytes.fromhex(sys.argv[1]).decode())' "$(tail -n 1 "$tmp/received")")
    if [ "$got" = "$text" ]; then pass "$arch: receiver got exactly the datagram"
    else fail "$arch: receiver got '${got}', want '$text' ($(cat "$tmp/receiver.err"))"; fi
  done
done

if [ "$failures" -gt 0 ]; then echo "qemu smoke test: $failures failure(s)"; exit 1; fi
echo "qemu smoke test: all passed ($*)"
