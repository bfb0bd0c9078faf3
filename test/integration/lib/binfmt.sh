# shellcheck shell=bash
# binfmt_misc helpers for the foreign-architecture tests: register qemu-aarch64
# only when the host lacks it, and undo exactly what was added (nothing more).

BINFMT_DIR=/proc/sys/fs/binfmt_misc
BINFMT_NAME=cloudjobs-it-aarch64
BINFMT_MOUNTED_BY_US=0
BINFMT_REGISTERED_BY_US=0

# Return 0 when some enabled binfmt entry already runs aarch64 ELF binaries.
binfmt_has_aarch64() {
  local f
  for f in "$BINFMT_DIR"/*; do
    [ -f "$f" ] || continue
    case "$(basename "$f")" in register|status) continue ;; esac
    if grep -q '^enabled' "$f" && grep -q 'magic 7f454c460201010000000000000000000200b700' "$f"; then
      return 0
    fi
  done
  return 1
}

# Make aarch64 binaries runnable through qemu-aarch64-static; fix_binary (F) so
# the interpreter need not exist inside the chroot.
binfmt_ensure_aarch64() {
  if [ ! -e "$BINFMT_DIR/register" ]; then
    mount -t binfmt_misc binfmt_misc "$BINFMT_DIR"
    BINFMT_MOUNTED_BY_US=1
  fi
  if binfmt_has_aarch64; then
    return 0
  fi
  local magic='\x7f\x45\x4c\x46\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00'
  local mask='\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff'
  printf ':%s:M::%s:%s:%s:F' "$BINFMT_NAME" "$magic" "$mask" /usr/bin/qemu-aarch64-static \
    > "$BINFMT_DIR/register"
  BINFMT_REGISTERED_BY_US=1
}

# Remove the registration (and the mount) this shell added, if any.
binfmt_restore() {
  if [ "$BINFMT_REGISTERED_BY_US" = 1 ] && [ -e "$BINFMT_DIR/$BINFMT_NAME" ]; then
    echo -1 > "$BINFMT_DIR/$BINFMT_NAME"
    BINFMT_REGISTERED_BY_US=0
  fi
  if [ "$BINFMT_MOUNTED_BY_US" = 1 ]; then
    umount "$BINFMT_DIR" || true
    BINFMT_MOUNTED_BY_US=0
  fi
}
