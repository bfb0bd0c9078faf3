#!/usr/bin/env bash
# An ARM package installed for real: apt-get install of the .deb into a cached
# Debian rootfs of that arch run through qemu-user binfmt, offline (armhf: apt
# pulls Debian's nodejs from the rootfs' apt cache as the package's
# dependency). The hardware groups gpio, i2c and spi are created first (video
# is Debian's own) and the postinst must put `cloudjobs` in all four. Then
# through the real /usr/bin/cloudjobs: `--version`, `exec` of a small job, and
# `cloudjobs run` against the reference cloud on the host's loopback, which
# must send READY=1 through the datagram addon and run a queued job to
# SUCCEEDED; its idle RSS is written to build/it/. armhf also checks the
# addon's ARMv6 attributes and that the system Node accepts the agent's V8
# flags. Purge must leave no user and no group membership behind.
#
# The rootfs is mounted as an overlay in private mount and PID namespaces, so
# the cache stays pristine and no mount or process outlives the test; a
# binfmt registration the test added is removed again.
#
# Usage: test/integration/foreign-arch.sh [--arch arm64|armhf] [--suite bookworm|trixie] [DEB]
#        (default: arm64 on trixie, build/cloudjobs_<v>_<arch>.deb)
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
ARCH=arm64 SUITE=trixie DEB=''
while [ $# -gt 0 ]; do
  case "$1" in
    --arch) ARCH=$2; shift 2 ;;
    --suite) SUITE=$2; shift 2 ;;
    *) DEB=$1; shift ;;
  esac
done
IT_NAME=foreign-arch-$ARCH-$SUITE
. "$HERE/lib/common.sh"
. "$HERE/lib/binfmt.sh"
. "$HERE/lib/rootfs.sh"
. "$HERE/lib/nspawn.sh"
. "$HERE/lib/cloud-admin.sh"

case "$ARCH" in
  arm64) QEMU=/usr/bin/qemu-aarch64-static UNAME_M=aarch64 RUNTIME_RE='node v24\.[0-9]+\.[0-9]+, linux-arm64, single executable' ;;
  armhf) QEMU=/usr/bin/qemu-arm-static UNAME_M='armv7l' RUNTIME_RE='node v(18|2[0-9])\.[0-9]+\.[0-9]+, linux-arm, system nodejs' ;;
  *) fail "unknown --arch '$ARCH' (arm64 or armhf)" ;;
esac
DEB=${DEB:-$(built_deb "$ARCH")}
[ -f "$DEB" ] || fail "no $ARCH .deb at $DEB (run make deb ARCH=$ARCH first)"
DEB=$(realpath "$DEB")
CLOUD_JS=$ROOT/build/reference-cloud.cjs
[ -f "$CLOUD_JS" ] || fail "no $CLOUD_JS (make build/reference-cloud.cjs)"

[ "$(id -u)" = 0 ] || skip "not root (needs chroot, mounts and binfmt_misc)"
[ -x "$QEMU" ] || skip "$QEMU missing (apt install qemu-user-static)"
command -v unshare >/dev/null || skip "unshare missing (util-linux)"
grep -qw overlay /proc/filesystems || modprobe overlay 2>/dev/null || skip "no overlayfs"
if [ ! -s "$(rootfs_tarball "$ARCH" "$SUITE")" ] && ! command -v debootstrap >/dev/null; then
  skip "no cached rootfs at $(rootfs_tarball "$ARCH" "$SUITE") and no debootstrap to build it"
fi

UUID=0a9b8c7d-6e5f-4a3b-9c2d-$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')
KEY=$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')
NOTIFY=@cloudjobs-it-$ARCH-$SUITE-$$
PYTHON=/usr/bin/python3
WORK=$(mktemp -d /tmp/cloudjobs-it-$ARCH.XXXXXX)
CLOUD_PID='' RECEIVER_PID='' INSIDE_PID=''
cleanup() {
  local pid
  for pid in $INSIDE_PID $RECEIVER_PID $CLOUD_PID; do
    kill -TERM "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  binfmt_restore
  rm -rf "$WORK"
}
trap cleanup EXIT

step "rootfs and binfmt"
binfmt_ensure "$ARCH"
[ "$BINFMT_REGISTERED_BY_US" = 1 ] && ok "registered $(basename "$QEMU") (removed at exit)" || ok "host already runs $ARCH binaries"
ensure_rootfs "$ARCH" "$SUITE"
BASE=$(extracted_rootfs "$ARCH" "$SUITE")
mkdir -p "$WORK/upper" "$WORK/work" "$WORK/root"
cp "$DEB" "$WORK/cloudjobs.deb"
cat > "$WORK/job.json" <<'EOF'
{"version":"1.0","includeStdOut":true,"steps":[
  {"name":"Machine","type":"runCommand","input":{"command":"uname,-m"}},
  {"name":"Who","type":"runCommand","input":{"command":"id,-un"}}]}
EOF
sed -n "s/^v8.setFlagsFromString('--\(no-\)\{0,1\}\([a-z-]*\)[=')].*/\2/p" "$ROOT/src/heap-tuning.ts" > "$WORK/v8-flags"
[ -s "$WORK/v8-flags" ] || fail "no V8 flags found in src/heap-tuning.ts"

step "reference cloud on the host's loopback, READY receiver on $NOTIFY"
node "$CLOUD_JS" --port 0 --device "$UUID:$KEY" > "$WORK/cloud.out" 2> "$WORK/cloud.err" &
CLOUD_PID=$!
wait_until 20 "the reference cloud" grep -q adminUrl "$WORK/cloud.out" || { cat "$WORK/cloud.err" >&2; fail "reference cloud did not start"; }
PORT=$(jq -r .port "$WORK/cloud.out")
"$PYTHON" "$ROOT/test/qemu/receive-datagrams.py" "$NOTIFY" 50 1500 > "$WORK/notify.out" 2> "$WORK/notify.err" &
RECEIVER_PID=$!
wait_until 10 "the READY receiver" grep -q '^ready$' "$WORK/notify.out" || fail "receiver did not start: $(cat "$WORK/notify.err")"
# the cloud listens on the host's loopback
ADMIN_VIA=()
doc='{"version":"1.0","includeStdOut":true,"steps":[{"name":"Hello","type":"runCommand","input":{"command":"sh,-c,echo hello from $(uname -m)"}}]}'
JOB=$(queue_job "Hello arm" "$doc")
printf '%s\n' "$KEY" > "$WORK/api-key"
write_agent_ini

# inside: PID 1 of private mount and PID namespaces; prints marked sections.
# Waits for $W/stop before it stops the agent (the host watches the cloud).
cat > "$WORK/inside.sh" <<'EOF'
set -u
W=$1 BASE=$2 ARCH=$3 NOTIFY=$4
R=$W/root
# nothing of the host's environment leaks into the chroot
C="env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 DEBIAN_FRONTEND=noninteractive"
inr() { chroot "$R" $C "$@"; }
T0=$(date +%s)
mark() { echo "@@@ $1"; echo "$1 +$(($(date +%s) - T0))s" >> "$W/times"; }
mount -t overlay overlay -o "lowerdir=$BASE,upperdir=$W/upper,workdir=$W/work" "$R" || exit 1
mount --rbind /dev "$R/dev"
mount -t proc proc "$R/proc"
mount -t tmpfs tmpfs "$R/tmp"
mount -t tmpfs tmpfs "$R/run"
cp "$W/cloudjobs.deb" "$W/job.json" "$R/tmp/"
mark groups-before
for g in gpio i2c spi; do inr groupadd --system "$g"; done
inr getent group video gpio i2c spi | cut -d: -f1 | tr '\n' ' '; echo
mark apt
inr apt-get install -y --no-install-recommends /tmp/cloudjobs.deb 2>&1 && echo "apt-rc=0" || echo "apt-rc=$?"
mark arch
inr dpkg-query -W -f='${Architecture} ${Status}\n' cloudjobs
mark member-of
inr id -nG cloudjobs
mark version
inr /usr/bin/cloudjobs --version 2>&1 && echo "version-rc=0" || echo "version-rc=$?"
if [ "$ARCH" = armhf ]; then
  mark node
  inr node --version
  mark v8-flags
  opts=$(inr node --v8-options)
  while read -r flag; do printf '%s ' "$flag"; grep -qE "^ +--$flag " <<<"$opts" && echo accepted || echo unknown; done < "$W/v8-flags"
  mark readelf
  readelf -A "$R/usr/lib/cloudjobs/datagram.node"
fi
mark exec
inr /usr/bin/cloudjobs exec /tmp/job.json 2>&1 && echo "exec-rc=0" || echo "exec-rc=$?"
mark run
install -m 0600 "$W/api-key" "$R/etc/cloudjobs/api-key"
install -m 0640 "$W/agent.ini" "$R/etc/cloudjobs/agent.ini"
chroot "$R" $C NOTIFY_SOCKET="$NOTIFY" /usr/bin/cloudjobs run > "$W/agent.log" 2>&1 &
agent=$!
touch "$W/agent-started"
for _ in $(seq 1 1200); do [ -e "$W/stop" ] && break; kill -0 "$agent" 2>/dev/null || break; sleep 0.2; done
echo "rss-kib=$(sed -n 's/^VmRSS:[[:space:]]*\([0-9]*\) kB/\1/p' "$R/proc/$agent/status" 2>/dev/null)"
kill -TERM "$agent" 2>/dev/null
wait "$agent"; echo "run-rc=$?"
mark purge
inr apt-get purge -y cloudjobs >/dev/null 2>&1 && echo "purge-rc=0" || echo "purge-rc=$?"
inr getent passwd cloudjobs
inr grep -c cloudjobs /etc/group /etc/gshadow
mark end
EOF

step "apt-get install, --version, exec and run under $(basename "$QEMU") ($SUITE)"
started=$(date +%s)
unshare --mount --pid --fork --kill-child --propagation private bash "$WORK/inside.sh" "$WORK" "$BASE" "$ARCH" "$NOTIFY" > "$WORK/out" 2>&1 &
INSIDE_PID=$!
# the agent's first poll takes the job; then a few idle polls before its RSS is read
inside_gone() { ! kill -0 "$INSIDE_PID" 2>/dev/null; }
agent_started() { [ -e "$WORK/agent-started" ] || inside_gone; }
job_done() { job_is "$JOB" SUCCEEDED || inside_gone; }
# under qemu-user (and a loaded machine) installing nodejs and the first start take minutes
wait_until 900 "the agent to start in the chroot" agent_started
wait_until 300 "job $JOB SUCCEEDED at the cloud" job_done && sleep 5
touch "$WORK/stop"
wait_until 300 "the chroot to finish" inside_gone || true
wait "$INSIDE_PID" 2>/dev/null || true
INSIDE_PID=''
out=$(cat "$WORK/out")
echo "  sections started at: $(tr '\n' ' ' < "$WORK/times" 2>/dev/null)" >&2
printf '%s\n' "$out" | sed 's/^/  | /' >&2
section() { printf '%s\n' "$out" | sed -n "/^@@@ $1\$/,/^@@@ /p" | sed '1d;/^@@@ /d'; }

check_eq "groups created before install" "video gpio i2c spi " "$(section groups-before)"
check_match "apt-get install" 'apt-rc=0' "$(section apt)"
[ "$ARCH" != armhf ] || check_match "apt pulled Debian's nodejs" '^Setting up nodejs ' "$(section apt)"
check_match "postinst names the groups" "added to[[:space:]]+the groups video gpio i2c spi" "$(section apt | tr '\n' ' ')"
check_eq "installed package" "$ARCH install ok installed" "$(section arch)"
check_eq "cloudjobs is in the hardware groups" "cloudjobs video gpio i2c spi" "$(section member-of)"
check_match "cloudjobs --version" "^cloudjobs $(package_version) \\($RUNTIME_RE\\)\$" "$(section version | head -n1)"
check_match "--version exit" 'version-rc=0' "$(section version)"
if [ "$ARCH" = armhf ]; then
  node_version=$(section node)
  check_match "--version names the system node" "node $node_version," "$(section version | head -n1)"
  check_eq "V8 flags of src/heap-tuning.ts accepted by node $node_version" "" "$(section v8-flags | grep -v ' accepted$' || true)"
  check_match "addon Tag_CPU_arch" 'Tag_CPU_arch: v6KZ' "$(section readelf)"
  check_match "addon Tag_FP_arch" 'Tag_FP_arch: VFPv2' "$(section readelf)"
  check_match "addon ABI" 'Tag_ABI_VFP_args: VFP registers' "$(section readelf)"
fi
check_match "exec ran uname -m" "$UNAME_M" "$(section exec)"
check_match "exec ran as the restricted user" 'cloudjobs' "$(section exec)"
check_match "exec verdict" '^SUCCEEDED: 2 of 2 steps succeeded$' "$(section exec | grep '^SUCCEEDED' || true)"
check_match "exec exit" 'exec-rc=0' "$(section exec)"
datagrams=$(tail -n +2 "$WORK/notify.out" | "$PYTHON" -c 'import sys; [print(bytes.fromhex(l.strip()).decode(errors="replace").replace("\n", " ")) for l in sys.stdin if l.strip()]')
check_match "run: READY=1 through the addon" '(^| )READY=1( |$)' "$datagrams"
check_eq "run: job $JOB at the cloud" SUCCEEDED "$(job_status "$JOB")"
check_match "run: the job's stdout" "hello from $UNAME_M" "$(admin GET "/jobs/$JOB" | jq -r .stdout)"
check_match "run: stopped cleanly on SIGTERM" 'run-rc=0' "$(section run)"
rss=$(section run | sed -n 's/^rss-kib=//p')
check_match "run: idle VmRSS read" '^[0-9]+$' "$rss"
mkdir -p "$ROOT/build/it"
echo "$ARCH $SUITE $(section version | head -n1): idle VmRSS under qemu-user ${rss:-?} KiB" | tee "$ROOT/build/it/idle-rss-$ARCH-$SUITE.txt" >&2
check_match "purge" 'purge-rc=0' "$(section purge)"
check_eq "purge: user and group memberships gone" "/etc/group:0 /etc/gshadow:0" "$(section purge | grep -v purge-rc | tr '\n' ' ' | sed 's/ $//')"
[ "$(grep -c . "$WORK/agent.log" || true)" -gt 0 ] && grep -q 'started: polling' "$WORK/agent.log" && ok "agent log says it started" \
  || { sed 's/^/  agent| /' "$WORK/agent.log" >&2; bad "agent log has no start line"; }
ok "took $(($(date +%s) - started))s"
grep -q " $WORK/root" /proc/mounts && bad "a mount of the test outlived it" || ok "no mounts left"

finish
