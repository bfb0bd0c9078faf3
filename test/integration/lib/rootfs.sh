# shellcheck shell=bash
# Cached debootstrap root filesystems for the integration tests. Built once per
# architecture into $CLOUDJOBS_IT_CACHE (outside the repo) as a plain tarball.

CLOUDJOBS_IT_CACHE=${CLOUDJOBS_IT_CACHE:-/var/cache/cloudjobs-it}
ROOTFS_SUITE=bookworm
ROOTFS_PACKAGES=systemd,systemd-sysv,dbus,apt,ca-certificates,adduser,procps,iproute2

# Print the Debian mirror the host's apt uses (deb822 or one-line sources).
find_debian_mirror() {
  local m
  m=$(grep -hsE '^(URIs:|deb )' /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources \
        | grep -oE 'https?://[^ ]+/debian/?( |$)' | grep -v security | head -n1 | tr -d ' ')
  echo "${m:-http://deb.debian.org/debian}"
}

# Print the tarball path for an architecture.
rootfs_tarball() {
  echo "$CLOUDJOBS_IT_CACHE/rootfs-$ROOTFS_SUITE-$1.tar"
}

# Build the tarball for ARCH unless it is cached; foreign arches go through
# debootstrap --foreign and a second stage under qemu-user binfmt.
ensure_rootfs() {
  local arch=$1 tar work mirror
  tar=$(rootfs_tarball "$arch")
  [ -s "$tar" ] && return 0
  mkdir -p "$CLOUDJOBS_IT_CACHE"
  work=$(mktemp -d "$CLOUDJOBS_IT_CACHE/build-$arch.XXXXXX")
  mirror=$(find_debian_mirror)
  echo "rootfs: debootstrap $ROOTFS_SUITE/$arch from $mirror into $work (once; cached as $tar)" >&2
  if [ "$arch" = "$(dpkg --print-architecture)" ]; then
    debootstrap --variant=minbase --include="$ROOTFS_PACKAGES" "$ROOTFS_SUITE" "$work/root" "$mirror" >&2
  else
    debootstrap --foreign --arch="$arch" --variant=minbase --include=adduser,procps \
      "$ROOTFS_SUITE" "$work/root" "$mirror" >&2
    binfmt_ensure_aarch64
    chroot "$work/root" /debootstrap/debootstrap --second-stage >&2
    binfmt_restore
  fi
  # apt inside the container must use the same mirror, not the host's extras
  echo "deb $mirror $ROOTFS_SUITE main" > "$work/root/etc/apt/sources.list"
  rm -rf "$work/root/var/cache/apt/archives/"*.deb
  tar -C "$work/root" --numeric-owner -cf "$tar.part" .
  mv "$tar.part" "$tar"
  rm -rf "$work"
}
