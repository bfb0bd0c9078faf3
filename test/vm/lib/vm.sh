# shellcheck shell=bash
# Virtual machine harness: Debian (bookworm, trixie) booted in qemu with its
# own kernel and initramfs, for what a container cannot show (a noexec /run
# from initramfs-tools, cgroup v2 under a real systemd, power cuts, a clock
# without RTC). TCG only (KVM does not work on the CI machines).
#
# API (source test/integration/lib/common.sh first, for fail/ok/bad):
#   vm_unusable                   prints why a VM cannot run here, or nothing
#   vm_image SUITE                cached base disk image, kernel and initrd of
#                                 SUITE (built once from the cached VM rootfs);
#                                 sets VM_BASE_IMG, VM_KERNEL, VM_INITRD
#   vm_init WORKDIR               where this VM's disk, sockets and logs live;
#                                 call it, then `trap vm_cleanup EXIT` (or call
#                                 vm_cleanup from the test's own trap)
#   vm_new_disk                   a fresh copy of the base image ($VM_DISK)
#   vm_share DIR                  DIR becomes the guest's /mnt/host (read-only,
#                                 a second disk); call before vm_boot
#   vm_start_cloud UUID KEY       reference cloud ($VM_WORK/reference-cloud.cjs)
#                                 on an ephemeral host loopback port; sets
#                                 CLOUD_PORT, CLOUD_PID; vm_admin METHOD PATH [JSON]
#   vm_boot [--rtc BASE]          boots $VM_DISK (qemu's RTC at BASE, e.g.
#                                 2024-12-06T10:00:00, else $VM_RTC_BASE, else
#                                 the host's time; the guest has no NTP);
#                                 returns once the guest runs commands (bounded)
#   vm_sh [--timeout S] CMD...    runs CMD (a bash script: its words joined)
#                                 in the guest as root; stdout, stderr, status
#   vm_wait_new_boot ID S         waits until the guest runs commands in a boot
#                                 other than ID (a reboot inside the VM); the
#                                 share is mounted again
#   vm_wait_running [S]           waits for systemctl is-system-running --wait
#   vm_install_deb FILE           apt-get install of FILE (in the share) in the guest
#   vm_bytes_written              bytes the guest wrote to its disk so far (QMP)
#   vm_power_cut                  kill -9 of qemu (the guest's page cache is lost;
#                                 what qemu wrote stays in the disk image)
#   vm_poweroff                   clean shutdown (bounded; else a power cut)
#   vm_wait_exit S                waits until qemu ends by itself (a guest poweroff)
#   vm_cleanup                    kills qemu and the cloud; always safe to call
# The guest reaches the cloud at http://10.0.2.100 (qemu's user network,
# restrict=on: that address and nothing else), and 10.0.2.100:443 reaches
# host port $VM_TLS_CLOUD_PORT when set. A guest reboot is a real reboot
# (qemu resets, boots the same kernel and disk again).

VM_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=/dev/null
. "$VM_DIR/../../integration/lib/binfmt.sh"
# shellcheck source=/dev/null
. "$VM_DIR/../../integration/lib/rootfs.sh"
VM_WORK=''
VM_DISK=''
VM_SHARE_IMG=''
VM_PID=''
VM_BOOTS=0
CLOUD_PORT=''
CLOUD_PID=''
VM_MEMORY=${VM_MEMORY:-1024}
VM_CPUS=${VM_CPUS:-2}
# Short: quiet consoles and no mitigations boot faster under TCG; no_timer_check:
# a slow TCG vCPU on a loaded host fails the IO-APIC timer check (a panic). No cgroup
# or /run options: the guest boots as Debian does. panic=1: the guest kernel
# under TCG on a loaded 2-core host sometimes panics in its own early init
# (seen once in about 30 boots: sched_clock_cpu, 3.7 s in, before any
# userspace); it then reboots itself like a device with a watchdog, and
# vm_cleanup says how often that happened (vm_report_panics).
VM_CMDLINE="root=/dev/vda rw console=ttyS0,115200 net.ifnames=0 fsck.mode=skip quiet loglevel=4 mitigations=off no_timer_check panic=1"
# What the base image adds to the rootfs; a change rebuilds the cached image.
VM_IMAGE_REV=3
# Masked: timers and services no test needs, and (each unit costs a fork and
# exec, slow under TCG, on every one of the ~30 boots of a run) the pseudo
# file systems and modules no test uses: mqueue, hugepages, debugfs, tracefs,
# configfs, fuse, modprobe@ (the kernel loads what the devices need through
# udev all the same), utmp.
VM_MASKED_UNITS="apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer e2scrub_reap.service fstrim.timer man-db.timer dpkg-db-backup.timer getty@tty1.service systemd-networkd-wait-online.service
  dev-mqueue.mount dev-hugepages.mount sys-kernel-debug.mount sys-kernel-tracing.mount sys-kernel-config.mount sys-fs-fuse-connections.mount
  modprobe@.service kmod-static-nodes.service systemd-update-utmp.service systemd-update-utmp-runlevel.service"

vm_unusable() {
  [ "$(id -u)" = 0 ] || { echo "not root (the VM rootfs is built with debootstrap)"; return; }
  local tool
  for tool in qemu-system-x86_64 socat python3 mkfs.ext4 flock setpriv; do
    command -v "$tool" >/dev/null || { echo "$tool missing (make apt-deps installs it)"; return; }
  done
  if [ ! -s "$(rootfs_tarball amd64 bookworm)" ] && ! command -v debootstrap >/dev/null; then
    echo "no cached VM rootfs and no debootstrap to build it"
  fi
}

# vm_image SUITE: see the API.
vm_image() {
  local suite=$1 dir stamp
  ensure_rootfs amd64 "$suite" || fail "building the VM rootfs of $suite failed"
  # one directory per revision: a branch with another revision does not rebuild this one's
  dir="$CLOUDJOBS_IT_CACHE/vm-$suite-amd64.r$VM_IMAGE_REV"
  stamp="rev $VM_IMAGE_REV $(stat -c %Y "$(rootfs_tarball amd64 "$suite")") $(cat "$VM_DIR"/guest/* | sha256sum | cut -c1-16)"
  mkdir -p "$dir"
  (
    flock 9
    [ "$(cat "$dir/stamp" 2>/dev/null)" = "$stamp" ] && exit 0
    vm_build_image "$suite" "$dir" || exit 1
    echo "$stamp" > "$dir/stamp"
  ) 9>"$dir.lock" || fail "building the VM disk image of $suite failed"
  VM_BASE_IMG="$dir/disk.img" VM_KERNEL="$dir/vmlinuz" VM_INITRD="$dir/initrd.img"
}

# vm_build_image SUITE DIR: rootfs + harness files -> DIR/{disk.img,vmlinuz,initrd.img}.
vm_build_image() {
  local suite=$1 dir=$2 tree unit started
  started=$(date +%s)
  tree=$(mktemp -d "$CLOUDJOBS_IT_CACHE/vm-tree-$suite.XXXXXX")
  tar -C "$tree" --numeric-owner -xf "$(rootfs_tarball amd64 "$suite")" || return 1
  cp -L "$tree/vmlinuz" "$dir/vmlinuz.part" && cp -L "$tree/initrd.img" "$dir/initrd.img.part" || {
    echo "vm: no /vmlinuz or /initrd.img in the $suite rootfs" >&2; rm -rf "$tree"; return 1; }
  # /mnt/host is mounted by vm_boot (an fstab entry's device timeout fires on a loaded host)
  echo '/dev/vda / ext4 rw,errors=remount-ro 0 1' > "$tree/etc/fstab"
  echo cloudjobs-vm > "$tree/etc/hostname"
  printf '127.0.0.1 localhost\n127.0.1.1 cloudjobs-vm\n' > "$tree/etc/hosts"
  mkdir -p "$tree/mnt/host" "$tree/var/log/journal" "$tree/usr/local/sbin"
  install -m 0755 "$VM_DIR/guest/vm-shell" "$tree/usr/local/sbin/vm-shell"
  install -D -m 0644 "$VM_DIR/guest/vm-net.batch" "$tree/usr/local/lib/vm-net.batch"
  install -m 0644 "$VM_DIR/guest/vm-shell.service" "$VM_DIR/guest/vm-net.service" "$tree/etc/systemd/system/"
  mkdir -p "$tree/etc/systemd/system/sysinit.target.wants" "$tree/etc/systemd/system/network-online.target.wants" \
    "$tree/etc/systemd/system/multi-user.target.wants"
  ln -sf ../vm-shell.service "$tree/etc/systemd/system/sysinit.target.wants/vm-shell.service"
  ln -sf ../vm-net.service "$tree/etc/systemd/system/network-online.target.wants/vm-net.service"
  ln -sf ../vm-net.service "$tree/etc/systemd/system/multi-user.target.wants/vm-net.service"
  for unit in $VM_MASKED_UNITS; do ln -sf /dev/null "$tree/etc/systemd/system/$unit"; done
  # root without a password on the serial console (a debugging aid; the logs are $VM_WORK/console.N.log)
  sed -i 's/^root:[^:]*:/root::/' "$tree/etc/shadow"
  rm -f "$dir/disk.img.part"
  mkfs.ext4 -q -F -L cloudjobs-vm -d "$tree" "$dir/disk.img.part" 3G || { rm -rf "$tree"; return 1; }
  rm -rf --one-file-system "$tree"
  mv "$dir/vmlinuz.part" "$dir/vmlinuz" && mv "$dir/initrd.img.part" "$dir/initrd.img" && mv "$dir/disk.img.part" "$dir/disk.img"
  echo "vm: disk image of $suite built in $(($(date +%s) - started))s" >&2
}

# vm_init WORKDIR: see the API.
vm_init() {
  VM_WORK=$1
  mkdir -p "$VM_WORK"
  VM_DISK="$VM_WORK/disk.img"
}

vm_new_disk() {
  cp --sparse=always "$VM_BASE_IMG" "$VM_DISK"
}

# vm_share DIR: see the API.
vm_share() {
  local size
  size=$(( $(du -sm "$1" | cut -f1) + 32 ))
  VM_SHARE_IMG="$VM_WORK/share.img"
  rm -f "$VM_SHARE_IMG"
  mkfs.ext4 -q -F -d "$1" "$VM_SHARE_IMG" "${size}M" || fail "mkfs.ext4 -d $1 failed"
}

# vm_start_cloud UUID KEY: see the API.
vm_start_cloud() {
  setpriv --pdeathsig KILL node "$VM_WORK/reference-cloud.cjs" --port 0 --device "$1:$2" \
    > "$VM_WORK/cloud.out" 2> "$VM_WORK/cloud.err" &
  CLOUD_PID=$!
  wait_until 20 "the reference cloud" grep -q adminUrl "$VM_WORK/cloud.out" || { cat "$VM_WORK/cloud.err" >&2; fail "reference cloud did not start"; }
  CLOUD_PORT=$(head -n1 "$VM_WORK/cloud.out" | jq -r .port)
}

# vm_admin METHOD PATH [JSON]: the reference cloud's admin API.
vm_admin() {
  curl -fsS -X "$1" -H 'Content-Type: application/json' ${3:+--data "$3"} "http://127.0.0.1:$CLOUD_PORT/admin$2"
}

# vm_boot [--rtc BASE]: see the API.
vm_boot() {
  local rtc="base=${VM_RTC_BASE:-utc}" net shares=()
  [ "${1:-}" = --rtc ] && { rtc="base=$2"; shift 2; }
  [ -z "$VM_PID" ] || fail "vm_boot: a VM is already running (pid $VM_PID)"
  rm -f "$VM_WORK/shell.sock" "$VM_WORK/qmp.sock"
  net="user,id=n0,restrict=on"
  [ -n "$CLOUD_PORT" ] && net+=",guestfwd=tcp:10.0.2.100:80-cmd:socat - TCP:127.0.0.1:$CLOUD_PORT"
  [ -n "${VM_TLS_CLOUD_PORT:-}" ] && net+=",guestfwd=tcp:10.0.2.100:443-cmd:socat - TCP:127.0.0.1:$VM_TLS_CLOUD_PORT"
  [ -n "$VM_SHARE_IMG" ] && shares=(-drive "file=$VM_SHARE_IMG,if=virtio,format=raw,readonly=on,id=share")
  VM_BOOTS=$((VM_BOOTS + 1))
  # --pdeathsig: qemu dies with this shell, even when the test is killed
  setpriv --pdeathsig KILL qemu-system-x86_64 -machine q35 -accel tcg,thread=multi -smp "$VM_CPUS" -m "$VM_MEMORY" \
    -kernel "$VM_KERNEL" -initrd "$VM_INITRD" -append "$VM_CMDLINE" \
    -drive "file=$VM_DISK,if=virtio,format=raw,cache=writeback,id=disk0" "${shares[@]}" \
    -netdev "$net" -device virtio-net-pci,netdev=n0 \
    -device virtio-serial-pci -chardev "socket,id=shell,path=$VM_WORK/shell.sock,server=on,wait=off" \
    -device virtserialport,chardev=shell,name=org.cloudjobs.shell \
    -qmp "unix:$VM_WORK/qmp.sock,server=on,wait=off" -rtc "$rtc" \
    -serial "file:$VM_WORK/console.$VM_BOOTS.log" -display none -monitor none -nodefaults \
    </dev/null >>"$VM_WORK/qemu.log" 2>&1 &
  VM_PID=$!
  vm_wait_shell 300 || { vm_show_console; fail "the VM did not answer within 300s of its start"; }
  vm_mount_share
}

# vm_panics [LOG]: how many guest kernel panics LOG (the current boot's
# console by default) shows; each one rebooted the guest by itself (panic=1).
vm_panics() {
  local n
  n=$(grep -c 'Kernel panic' "${1:-$VM_WORK/console.$VM_BOOTS.log}" 2>/dev/null || true)
  echo "${n:-0}"
}

# vm_report_panics: names every boot whose console shows a guest kernel panic,
# so an emulator fault is never silent.
vm_report_panics() {
  local log
  [ -n "$VM_WORK" ] || return 0
  for log in "$VM_WORK"/console.*.log; do
    [ -e "$log" ] || continue
    if [ "$(vm_panics "$log")" -gt 0 ]; then
      echo "NOTE ${IT_NAME:-vm}: the guest kernel panicked in ${log##*/} and rebooted itself (panic=1): $(grep -m1 -o 'RIP: [^ ]*' "$log" || echo 'no RIP line')" >&2
    fi
  done
}

# vm_mount_share: the share (if any) at /mnt/host in the guest; again after a reboot.
vm_mount_share() {
  [ -n "$VM_SHARE_IMG" ] || return 0
  vm_sh --timeout 60 'until [ -b /dev/vdb ]; do sleep 0.2; done; mountpoint -q /mnt/host || mount -o ro /dev/vdb /mnt/host' \
    || fail "mounting the share at /mnt/host in the guest failed"
}

# vm_wait_shell S: waits until the guest's vm-shell answers (1 when qemu ended or S passed).
vm_wait_shell() {
  local deadline=$(($(date +%s) + $1))
  until vm_sh --timeout 5 true 2>/dev/null; do
    kill -0 "$VM_PID" 2>/dev/null || { cat "$VM_WORK/qemu.log" >&2; return 1; }
    [ "$(date +%s)" -lt "$deadline" ] || return 1
  done
}

# vm_wait_new_boot OLD_BOOT_ID S: waits until the guest answers from another boot.
vm_wait_new_boot() {
  local deadline=$(($(date +%s) + $2)) id
  while [ "$(date +%s)" -lt "$deadline" ]; do
    kill -0 "$VM_PID" 2>/dev/null || return 1
    id=$(vm_sh --timeout 5 cat /proc/sys/kernel/random/boot_id 2>/dev/null || true)
    if [ -n "$id" ] && [ "$id" != "$1" ]; then vm_mount_share; return 0; fi
    sleep 0.5
  done
  return 1
}

# vm_show_console: the tail of the current boot's serial console.
vm_show_console() {
  echo "--- serial console (boot $VM_BOOTS) ---" >&2
  tail -n 40 "$VM_WORK/console.$VM_BOOTS.log" >&2 || true
}

# vm_sh [--timeout S] CMD...: see the API (default timeout 120 s).
vm_sh() {
  local timeout=120
  [ "${1:-}" = --timeout ] && { timeout=$2; shift 2; }
  printf '%s\n' "$*" | python3 "$VM_DIR/vmctl.py" sh "$VM_WORK/shell.sock" "$timeout"
}

# vm_wait_running [S]: see the API.
vm_wait_running() {
  local state
  state=$(vm_sh --timeout "${1:-120}" 'systemctl is-system-running --wait' 2>/dev/null || true)
  case "$state" in
    running|degraded) return 0 ;;
    *) vm_show_console; bad "the guest did not finish booting (state '$state')"; return 1 ;;
  esac
}

# vm_install_deb FILE: see the API.
vm_install_deb() {
  local out
  out=$(vm_sh --timeout 300 "DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends /mnt/host/$1 2>&1") \
    || { echo "$out" >&2; fail "apt-get install of $1 in the VM failed"; }
}

vm_bytes_written() {
  python3 "$VM_DIR/vmctl.py" qmp "$VM_WORK/qmp.sock" query-blockstats | jq -r '.[] | select(.device == "disk0") | .stats.wr_bytes'
}

# vm_reap: qemu ended (or was killed); collect it.
vm_reap() {
  wait "$VM_PID" 2>/dev/null || true
  VM_PID=''
}

vm_power_cut() {
  [ -n "$VM_PID" ] || return 0
  kill -KILL "$VM_PID" 2>/dev/null || true
  vm_reap
}

# vm_wait_exit S: see the API; 1 when qemu still runs after S seconds.
vm_wait_exit() {
  local deadline=$(($(date +%s) + $1))
  while kill -0 "$VM_PID" 2>/dev/null; do
    [ "$(date +%s)" -lt "$deadline" ] || return 1
    sleep 0.2
  done
  vm_reap
}

vm_poweroff() {
  [ -n "$VM_PID" ] || return 0
  vm_sh --timeout 20 "setsid sh -c 'sleep 1; systemctl poweroff' >/dev/null 2>&1 < /dev/null &" >/dev/null 2>&1 || true
  vm_wait_exit 90 || { bad "the VM did not power off within 90s: cutting the power"; vm_power_cut; }
}

vm_cleanup() {
  vm_power_cut
  vm_report_panics
  if [ -n "$CLOUD_PID" ]; then kill -TERM "$CLOUD_PID" 2>/dev/null || true; wait "$CLOUD_PID" 2>/dev/null || true; CLOUD_PID=''; fi
}
