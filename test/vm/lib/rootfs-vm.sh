# shellcheck shell=bash
# The VM flavour of the cached root file systems (test/integration/lib/rootfs.sh):
# the nspawn package set plus Debian's kernel, its initramfs and udev, cached
# as $CLOUDJOBS_IT_CACHE/rootfs-vm-<suite>-amd64.tar.
# API: vm_rootfs_tarball SUITE, vm_ensure_rootfs SUITE.
VM_LIB_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=/dev/null
. "$VM_LIB_DIR/../../integration/lib/binfmt.sh"
# shellcheck source=/dev/null
. "$VM_LIB_DIR/../../integration/lib/rootfs.sh"
VM_ROOTFS_PACKAGES="$ROOTFS_PACKAGES,udev,kmod,initramfs-tools,linux-image-amd64"

# vm_rootfs_tarball SUITE: the tarball's path.
vm_rootfs_tarball() { ROOTFS_FLAVOR=vm rootfs_tarball amd64 "$1"; }

# vm_ensure_rootfs SUITE: builds the tarball once (locked like the nspawn ones).
vm_ensure_rootfs() { ROOTFS_FLAVOR=vm ROOTFS_PACKAGES="$VM_ROOTFS_PACKAGES" ensure_rootfs amd64 "$1"; }
