#!/usr/bin/env bash
# The arm64 package installed for real: dpkg -i into a cached Debian bookworm
# arm64 rootfs run through qemu-user binfmt, then `cloudjobs --version` and
# `cloudjobs exec` of a small job there. The rootfs is mounted as an overlay
# in a private mount namespace, so the cache stays pristine and no mount
# outlives the test; a binfmt registration the test added is removed again.
#
# Usage: test/integration/foreign-arch.sh [DEB]   (default build/cloudjobs_<v>_arm64.deb)
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
IT_NAME=foreign-arch-arm64
. "$HERE/lib/common.sh"
. "$HERE/lib/binfmt.sh"
. "$HERE/lib/rootfs.sh"
. "$HERE/lib/nspawn.sh"

DEB=${1:-$(ls -t "$ROOT"/build/cloudjobs_*_arm64.deb 2>/dev/null | head -n1 || true)}
[ -n "$DEB" ] && [ -f "$DEB" ] || fail "no arm64 .deb (run make deb ARCH=arm64 first)"
DEB=$(realpath "$DEB")

[ "$(id -u)" = 0 ] || skip "not root (needs chroot, mounts and binfmt_misc)"
[ -x /usr/bin/qemu-aarch64-static ] || skip "qemu-aarch64-static missing (apt install qemu-user-static)"
command -v unshare >/dev/null || skip "unshare missing (util-linux)"
grep -qw overlay /proc/filesystems || modprobe overlay 2>/dev/null || skip "no overlayfs"
if [ ! -s "$(rootfs_tarball arm64)" ] && ! command -v debootstrap >/dev/null; then
  skip "no cached rootfs at $(rootfs_tarball arm64) and no debootstrap to build it"
fi

WORK=$(mktemp -d /tmp/cloudjobs-it-arm64.XXXXXX)
cleanup() {
  binfmt_restore
  rm -rf "$WORK"
}
trap cleanup EXIT

step "rootfs and binfmt"
binfmt_ensure_aarch64
[ "$BINFMT_REGISTERED_BY_US" = 1 ] && ok "registered qemu-aarch64 (removed at exit)" || ok "host already runs aarch64 binaries"
ensure_rootfs arm64
# ensure_rootfs may have used (and restored) binfmt itself: make sure it is there
binfmt_ensure_aarch64
BASE=$(extracted_rootfs arm64)
mkdir -p "$WORK/upper" "$WORK/work" "$WORK/root"
cp "$DEB" "$WORK/cloudjobs_arm64.deb"
cat > "$WORK/job.json" <<'EOF'
{"version":"1.0","includeStdOut":true,"steps":[
  {"name":"Machine","type":"runCommand","input":{"command":"uname,-m"}},
  {"name":"Who","type":"runCommand","input":{"command":"id,-un"}}]}
EOF

# inside: runs as PID 1 of a private mount namespace; prints marked sections.
cat > "$WORK/inside.sh" <<'EOF'
set -eu
W=$1 BASE=$2
R=$W/root
# nothing of the host's environment leaks into the chroot
C="env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 DEBIAN_FRONTEND=noninteractive"
mount -t overlay overlay -o "lowerdir=$BASE,upperdir=$W/upper,workdir=$W/work" "$R"
mount --rbind /dev "$R/dev"
mount -t proc proc "$R/proc"
mount -t tmpfs tmpfs "$R/tmp"
mount -t tmpfs tmpfs "$R/run"
cp "$W/cloudjobs_arm64.deb" "$W/job.json" "$R/tmp/"
echo "@@@ dpkg"
chroot "$R" $C dpkg -i /tmp/cloudjobs_arm64.deb 2>&1 && echo "dpkg-rc=0" || echo "dpkg-rc=$?"
echo "@@@ arch"
chroot "$R" $C dpkg-query -W -f='${Architecture} ${Status}\n' cloudjobs
echo "@@@ version"
chroot "$R" $C /usr/bin/cloudjobs --version 2>&1 && echo "version-rc=0" || echo "version-rc=$?"
echo "@@@ exec"
chroot "$R" $C /usr/bin/cloudjobs exec /tmp/job.json 2>&1 && echo "exec-rc=0" || echo "exec-rc=$?"
EOF

step "dpkg -i, --version and exec under qemu-aarch64"
started=$(date +%s)
out=$(unshare --mount --propagation private --fork bash "$WORK/inside.sh" "$WORK" "$BASE" 2>&1) || true
printf '%s\n' "$out" | sed 's/^/  | /' >&2
section() { printf '%s\n' "$out" | sed -n "/^@@@ $1\$/,/^@@@ /p" | sed '1d;/^@@@ /d'; }
check_match "dpkg -i" 'dpkg-rc=0' "$(section dpkg)"
check_eq "installed package" "arm64 install ok installed" "$(section arch)"
check_eq "cloudjobs --version" "cloudjobs $(node -p "require('$ROOT/package.json').version")" "$(section version | head -n1)"
check_match "--version exit" 'version-rc=0' "$(section version)"
check_match "exec ran uname -m" 'aarch64' "$(section exec)"
check_match "exec ran as the restricted user" 'cloudjobs' "$(section exec)"
check_match "exec verdict" '^SUCCEEDED: 2 of 2 steps succeeded$' "$(section exec | grep '^SUCCEEDED' || true)"
check_match "exec exit" 'exec-rc=0' "$(section exec)"
ok "took $(($(date +%s) - started))s"
grep -q " $WORK/root" /proc/mounts && bad "a mount of the test outlived it" || ok "no mounts left"

finish
