# shellcheck shell=bash
# binfmt_misc helpers for the foreign-architecture tests: register qemu-user
# for arm64 (aarch64) and armhf (32-bit ARM) only when the host lacks it, and
# undo exactly what was added (nothing more).
#
# API: binfmt_ensure ARCH (arm64|armhf), binfmt_restore; binfmt_ensure_aarch64
# and binfmt_has_aarch64 stay for the scripts written against the first version.

BINFMT_DIR=/proc/sys/fs/binfmt_misc
BINFMT_NAME=cloudjobs-it-aarch64       # prefix of the arm64 entries' names (kept for old callers)
BINFMT_MOUNTED_BY_US=0
BINFMT_REGISTERED_BY_US=0              # 1 once this shell registered any entry
BINFMT_OURS=()                         # names of the entries this shell registered

# binfmt_magic ARCH: prints "NAME MAGIC_HEX QEMU" for an arch (magic as /proc shows it).
binfmt_magic() {
  case "$1" in
    arm64) echo "cloudjobs-it-aarch64 7f454c460201010000000000000000000200b700 /usr/bin/qemu-aarch64-static" ;;
    armhf) echo "cloudjobs-it-arm 7f454c4601010100000000000000000002002800 /usr/bin/qemu-arm-static" ;;
    *) echo "binfmt: unknown arch '$1' (known: arm64 armhf)" >&2; return 1 ;;
  esac
}

# binfmt_has ARCH: 0 when an enabled entry with the fix-binary (F) flag, not
# one of a test's own, runs ARCH's ELF binaries. Without F the interpreter
# would have to exist inside the chroot, so such an entry does not count
# (ours, registered later, wins). Another test's entry does not count either:
# it goes away when that test ends, so each test registers its own, under a
# name with its pid, and two runs at once (a rootfs build, a test) never pull
# the registration from under each other.
binfmt_has() {
  local name magic qemu f
  read -r name magic qemu < <(binfmt_magic "$1") || return 1
  magic=${magic:0:40}
  for f in "$BINFMT_DIR"/*; do
    [ -f "$f" ] || continue
    case "$(basename "$f")" in register|status|cloudjobs-it-*) continue ;; esac
    grep -q '^enabled' "$f" && grep -q "magic $magic" "$f" && grep -q '^flags:.*F' "$f" && return 0
  done
  return 1
}

# binfmt_ensure ARCH: make ARCH's binaries runnable through qemu-user-static.
binfmt_ensure() {
  local name magic qemu m k
  read -r name magic qemu < <(binfmt_magic "$1") || return 1
  if [ ! -e "$BINFMT_DIR/register" ]; then
    mount -t binfmt_misc binfmt_misc "$BINFMT_DIR"
    BINFMT_MOUNTED_BY_US=1
  fi
  binfmt_has "$1" && return 0
  [ -x "$qemu" ] || { echo "binfmt: $qemu missing (apt install qemu-user-static)" >&2; return 1; }
  # 20 bytes of ELF header: class, data, version, (OS ABI masked), type EXEC/DYN, machine
  m='' k=''
  for i in $(seq 0 2 38); do m+="\\x${magic:$i:2}"; done
  k='\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff'
  name=$name-$BASHPID
  [ -e "$BINFMT_DIR/$name" ] && return 0
  printf ':%s:M::%s:%s:%s:F' "$name" "$m" "$k" "$qemu" > "$BINFMT_DIR/register"
  BINFMT_OURS+=("$name")
  BINFMT_REGISTERED_BY_US=1
}

# Kept for callers of the first version.
binfmt_has_aarch64() { binfmt_has arm64; }
binfmt_ensure_aarch64() { binfmt_ensure arm64; }

# Remove the registrations (and the mount) this shell added, if any.
binfmt_restore() {
  local name
  for name in "${BINFMT_OURS[@]}"; do
    [ -e "$BINFMT_DIR/$name" ] && echo -1 > "$BINFMT_DIR/$name"
  done
  BINFMT_OURS=()
  BINFMT_REGISTERED_BY_US=0
  # not while another run's entries live: they would go with the mount
  if [ "$BINFMT_MOUNTED_BY_US" = 1 ] && ! compgen -G "$BINFMT_DIR/cloudjobs-it-*" >/dev/null; then
    umount "$BINFMT_DIR" || true
  fi
  BINFMT_MOUNTED_BY_US=0
}
