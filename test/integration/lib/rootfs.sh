# shellcheck shell=bash
# Cached debootstrap root filesystems for the integration and VM tests. Built
# once per Debian suite and architecture into $CLOUDJOBS_IT_CACHE (outside the
# repo) as a plain tarball.
#
# API: rootfs_tarball ARCH [SUITE], ensure_rootfs ARCH [SUITE],
# rootfs_prefetch SPEC... (ARCH:SUITE, built side by side), rootfs_extract TAR
# DIR (for a container: without the kernel's files). SUITE defaults to
# $ROOTFS_SUITE (bookworm), so scripts written for one suite keep working.
# Foreign arches need lib/binfmt.sh sourced too.
#
# The amd64 trees carry Debian's kernel, its initramfs and udev: test/vm boots
# them in qemu, and nspawn boots the same tree (a container ignores the kernel),
# so a fresh machine builds one amd64 tree per suite, not two. They are cached
# as rootfs-vm-<suite>-amd64.tar; the foreign ones as rootfs-<suite>-<arch>.tar.

CLOUDJOBS_IT_CACHE=${CLOUDJOBS_IT_CACHE:-/var/cache/cloudjobs-it}
ROOTFS_SUITE=${ROOTFS_SUITE:-bookworm}
ROOTFS_PACKAGES=systemd,systemd-sysv,dbus,apt,ca-certificates,adduser,procps,iproute2
ROOTFS_KERNEL_PACKAGES=udev,kmod,initramfs-tools,linux-image-amd64
# Downloaded (not installed) into armhf trees, with apt's package lists: the
# tests install the armhf package with apt, which must pull Debian's nodejs as
# its dependency, offline and without a certificate store (minbase has none).
ROOTFS_ARMHF_DOWNLOADS=nodejs
# Every tree a test uses (test/qemu, test/integration, test/vm): what
# `make rootfs` builds in the background at the start of `make test`.
ROOTFS_ALL="amd64:bookworm amd64:trixie arm64:trixie armhf:bookworm armhf:trixie"

# Print the Debian mirror the host's apt uses (deb822 or one-line sources).
find_debian_mirror() {
  local m
  m=$(grep -hsE '^(URIs:|deb )' /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources \
        | grep -oE 'https?://[^ ]+/debian/?( |$)' | grep -v security | head -n1 | tr -d ' ')
  echo "${m:-http://deb.debian.org/debian}"
}

# Print the tarball path for ARCH [SUITE].
rootfs_tarball() {
  echo "$CLOUDJOBS_IT_CACHE/rootfs-$(rootfs_kind "$1")${2:-$ROOTFS_SUITE}-$1.tar"
}

# rootfs_kind ARCH: the name's prefix of ARCH's trees ("vm-": with a kernel).
rootfs_kind() { if [ "$1" = amd64 ]; then echo vm-; fi; }

# Build the tarball for ARCH [SUITE] unless it is cached; foreign arches go
# through debootstrap --foreign and a second stage under qemu-user binfmt.
# A lock per tarball: two test runs never build the same tree at once.
ensure_rootfs() {
  local arch=$1 suite=${2:-$ROOTFS_SUITE} tar
  tar=$(rootfs_tarball "$arch" "$suite")
  [ -s "$tar" ] && return 0
  mkdir -p "$CLOUDJOBS_IT_CACHE"
  (
    # a build that stops half way must not leave its binfmt entry registered
    ours=${#BINFMT_OURS[@]}
    trap 'for name in "${BINFMT_OURS[@]:$ours}"; do echo -1 > "$BINFMT_DIR/$name"; done' EXIT
    flock 9
    [ -s "$tar" ] && exit 0
    # a build that failed before (we hold the lock: nobody else is building)
    local stale
    for stale in "$CLOUDJOBS_IT_CACHE/build-$(rootfs_kind "$arch")$suite-$arch".*; do if [ -e "$stale" ]; then rootfs_discard "$stale"; fi; done
    build_rootfs "$arch" "$suite" "$tar"
  ) 9>"$tar.lock"
}

# build_rootfs ARCH SUITE TAR: debootstrap into a temp dir, pack it as TAR.
build_rootfs() {
  local arch=$1 suite=$2 tar=$3 work mirror started
  # what binfmt registrations the caller holds: only ours are undone below
  local ours_before=${#BINFMT_OURS[@]} mounted_before=${BINFMT_MOUNTED_BY_US:-0} name
  started=$(date +%s)
  work=$(mktemp -d "$CLOUDJOBS_IT_CACHE/build-$(rootfs_kind "$arch")$suite-$arch.XXXXXX")
  mirror=$(find_debian_mirror)
  echo "rootfs: debootstrap $suite/$arch from $mirror into $work (once; cached as $tar)" >&2
  if [ "$arch" = "$(dpkg --print-architecture)" ]; then
    debootstrap --variant=minbase --include="$ROOTFS_PACKAGES,$ROOTFS_KERNEL_PACKAGES" "$suite" "$work/root" "$mirror" >&2 \
      || { echo "rootfs: debootstrap $suite/$arch failed" >&2; return 1; }
  else
    debootstrap --foreign --arch="$arch" --variant=minbase --include=adduser,procps \
      "$suite" "$work/root" "$mirror" >&2 || { echo "rootfs: debootstrap $suite/$arch failed" >&2; return 1; }
    binfmt_ensure "$arch" || return 1
    chroot "$work/root" /debootstrap/debootstrap --second-stage >&2 \
      || { echo "rootfs: the second stage of $suite/$arch failed (see $work/root/debootstrap/debootstrap.log)" >&2; return 1; }
  fi
  # apt inside the container must use the same mirror, not the host's extras
  echo "deb $mirror $suite main" > "$work/root/etc/apt/sources.list"
  rm -rf "$work/root/var/cache/apt/archives/"*.deb
  if [ "$arch" = armhf ]; then
    rootfs_download "$work/root" $ROOTFS_ARMHF_DOWNLOADS || { echo "rootfs: downloading $ROOTFS_ARMHF_DOWNLOADS into $suite/$arch failed" >&2; return 1; }
  fi
  for name in "${BINFMT_OURS[@]:$ours_before}"; do echo -1 > "$BINFMT_DIR/$name"; done
  BINFMT_OURS=("${BINFMT_OURS[@]:0:$ours_before}")
  if [ "$mounted_before" = 0 ] && [ "${BINFMT_MOUNTED_BY_US:-0}" = 1 ] && ! compgen -G "$BINFMT_DIR/cloudjobs-it-*" >/dev/null; then
    umount "$BINFMT_DIR" || true
  fi
  BINFMT_MOUNTED_BY_US=$mounted_before
  tar -C "$work/root" --numeric-owner -cf "$tar.part" . || return 1
  mv "$tar.part" "$tar" || return 1
  rootfs_discard "$work"
  echo "rootfs: $suite/$arch took $(($(date +%s) - started))s" >&2
}

# rootfs_discard DIR: unmounts what a failed debootstrap left mounted under DIR
# (its second stage mounts proc and sysfs), then removes DIR without ever
# crossing into another file system.
rootfs_discard() {
  local dir mnt
  dir=$(realpath "$1")
  awk -v d="$dir/" 'index($2, d) == 1 { print $2 }' /proc/mounts | sort -r | while read -r mnt; do
    umount -l "$mnt" || true
  done
  rm -rf --one-file-system "$dir"
}

# rootfs_download ROOT PACKAGE...: apt-get update and download PACKAGEs and
# their dependencies into ROOT's apt cache (not installed), under qemu-user.
rootfs_download() {
  local root=$1; shift
  cp /etc/resolv.conf "$root/etc/resolv.conf"
  chroot "$root" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive \
    sh -c 'apt-get update -qq && apt-get install -y -qq --download-only --no-install-recommends "$@"' apt "$@" >&2
  local rc=$?
  rm -f "$root/etc/resolv.conf"
  return "$rc"
}

# rootfs_extract TAR DIR: unpacks TAR into DIR for a container: the kernel's
# modules and images stay out (nspawn uses the host's kernel).
rootfs_extract() {
  tar -C "$2" --numeric-owner --exclude=./boot --exclude=./usr/lib/modules --exclude=./usr/lib/firmware -xf "$1"
}

# rootfs_prefetch SPEC...: builds the missing trees among SPECs (ARCH:SUITE)
# side by side (on a fresh machine one waits on the network while another runs
# its second stage under qemu). Each build holds its tarball's lock, so a test
# that needs a tree being built waits for it; a failed build is retried, and
# reported, by the test that needs it. Needs root and debootstrap (else a no-op).
rootfs_prefetch() {
  [ "$(id -u)" = 0 ] && command -v debootstrap >/dev/null || return 0
  local spec missing=()
  for spec in "$@"; do
    [ -s "$(rootfs_tarball "${spec%:*}" "${spec#*:}")" ] || missing+=("$spec")
  done
  [ ${#missing[@]} -gt 0 ] || return 0
  echo "rootfs: building ${missing[*]} (once; cached in $CLOUDJOBS_IT_CACHE)" >&2
  if [ ! -e "$BINFMT_DIR/register" ]; then mount -t binfmt_misc binfmt_misc "$BINFMT_DIR"; BINFMT_MOUNTED_BY_US=1; fi
  for spec in "${missing[@]}"; do
    (ensure_rootfs "${spec%:*}" "${spec#*:}" || echo "rootfs: building the $spec tree failed" >&2) &
  done
  wait
  binfmt_restore
}
