#!/usr/bin/env bash
# Figure 16 (issue 20): the per-step cost of starting a step inside a
# transient systemd scope (systemd-run --scope, choom, setpriv) against the
# direct spawn. Needs systemd as PID 1, so it boots the cached trixie rootfs
# with systemd-nspawn (as test/integration/nspawn-systemd.sh does) and installs
# the .deb. In it, the same 100-step job of /bin/true (as the unprivileged
# cloudjobs user) runs through `cloudjobs exec` ROUNDS times each way, side by
# side: with limits (systemd present) and without (a private empty tmpfs over
# /run/systemd, so the agent sees no systemd and spawns directly).
# Prints one JSON line: {"steps":N,"scoped":[ms per step...],"direct":[...]}
# (the sum of the steps' own durations, divided by the steps).
# Usage: test/bench/scope-steps.sh DEB [ROUNDS]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
HERE=$ROOT/test/integration
IT_NAME=bench-scope-steps
. "$HERE/lib/common.sh"
. "$HERE/lib/binfmt.sh"
. "$HERE/lib/rootfs.sh"
. "$HERE/lib/nspawn.sh"
DEB=$(realpath "$1")
ROUNDS=${2:-3}
STEPS=100
why=$(nspawn_unusable)
[ -z "$why" ] || fail "$why"
WORK=$(mktemp -d /tmp/cloudjobs-bench-scope.XXXXXX)
trap 'stop_container; rm -rf "$WORK"' EXIT
ensure_rootfs amd64 trixie >&2
DIR=$(extracted_rootfs amd64 trixie)
export SYSTEMD_NSPAWN_UNIFIED_HIERARCHY=1
cp "$DEB" "$WORK/cloudjobs_amd64.deb"
jq -cn --argjson n "$STEPS" '{version:"1.0", steps:[range($n) | {name:"s\(.)", type:"runCommand", input:{command:"/bin/true"}}]}' > "$WORK/job.json"
boot_container "$DIR" "$WORK" >&2
ct env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends /mnt/host/cloudjobs_amd64.deb >/dev/null 2>&1 \
  || fail "apt-get install failed"
ct sh -c 'printf "[cloud]\napi_url = http://127.0.0.1:1/api/v1\n" > /etc/cloudjobs/agent.ini'
# per_step OUTPUT: the mean of the steps' own durations ("N. sK: ok [exit 0, 12 ms]")
per_step() { sed -n 's/.*ok \[exit 0, \([0-9]*\) ms\].*/\1/p' | awk -v n="$STEPS" '{s += $1; c++} END {if (c != n) exit 1; printf "%.2f", s / c}'; }
scoped=() direct=()
for _ in $(seq 1 "$ROUNDS"); do
  out=$(ct cloudjobs exec /mnt/host/job.json 2>&1) || { echo "$out" >&2; fail "the scoped run failed"; }
  grep -q 'jobs run in their own systemd slice' <<<"$out" || fail "the scoped run did not use systemd units"
  scoped+=("$(per_step <<<"$out")")
  out=$(ct unshare -m sh -c 'mount -t tmpfs none /run/systemd && cloudjobs exec /mnt/host/job.json' 2>&1) \
    || { echo "$out" >&2; fail "the direct run failed"; }
  grep -q 'resource limits are not enforced: systemd is not running' <<<"$out" || fail "the direct run still saw systemd"
  direct+=("$(per_step <<<"$out")")
done
printf '{"steps":%d,"scoped":[%s],"direct":[%s]}\n' "$STEPS" "$(IFS=,; echo "${scoped[*]}")" "$(IFS=,; echo "${direct[*]}")"
