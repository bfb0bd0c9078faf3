#!/usr/bin/env bash
# Builds the datagram N-API addon for each arch: build/native/<arch>/datagram.node.
# Usage: src/build/addon.sh [ARCH...]   (default: x64 arm64 armhf)
#
# armhf is built for ARMv6 with hard-float VFPv2, Raspberry Pi OS's baseline,
# so one addon loads on a Pi Zero W or Pi 1 as well as on ARMv7/ARMv8 boards.
# -nostartfiles: Debian's armhf crt*.o are ARMv7 Thumb-2 and would make the
# whole object ARMv7; a shared object needs none of them (no main, and
# __dso_handle/_init are unused by this C code). readelf -A must then say
# Tag_CPU_arch: v6KZ and Tag_FP_arch: VFPv2, which this script checks.
source "$(dirname "$0")/lib.sh"
SRC="$ROOT/src/service/datagram.c"
# Node's headers: the host's (nodejs package), else the pinned x64 package's copy.
NODE_INCLUDE="${NODE_INCLUDE:-/usr/include/node}"
[ -f "$NODE_INCLUDE/node_api.h" ] || die "node_api.h not found in $NODE_INCLUDE; set NODE_INCLUDE to a Node include/node directory (N-API 8: Node 18 or later)"
CFLAGS=(-shared -fPIC -O2 -Wall -Wextra -Werror -fstack-protector-strong -D_FORTIFY_SOURCE=2
  -fno-ident -ffile-prefix-map="$ROOT"=. -I"$NODE_INCLUDE" -Wl,-z,relro,-z,now -Wl,-z,noexecstack -Wl,--build-id=sha1)

# arch_flags ARCH: the target flags of ARCH beyond the toolchain's defaults.
arch_flags() {
  case "$1" in
    armhf) echo -march=armv6kz -marm -mfpu=vfp -mfloat-abi=hard -nostartfiles ;;
  esac
}

# check_armv6 FILE: dies unless FILE's ARM attributes say ARMv6 with VFPv2 and no Thumb-2.
check_armv6() {
  local attrs
  attrs=$(readelf -A "$1")
  grep -q 'Tag_CPU_arch: v6KZ' <<<"$attrs" && grep -q 'Tag_FP_arch: VFPv2' <<<"$attrs" \
    && ! grep -q 'Tag_THUMB_ISA_use: Thumb-2' <<<"$attrs" \
    || die "$1 is not an ARMv6 hard-float VFPv2 object (a Pi Zero could not load it): $(tr '\n' ' ' <<<"$attrs")"
}

[ $# -gt 0 ] || set -- "${ADDON_ARCHES[@]}"
for arch in "$@"; do
  check_addon_arch "$arch"
  out="$BUILD/native/$arch/datagram.node"
  newer "$out" "$SRC" "$0" "$ROOT/src/build/lib.sh" && continue
  cc=$(tool "$arch" gcc); strip=$(tool "$arch" strip)
  command -v "$cc" >/dev/null || die "$cc not found: install its cross compiler (make apt-deps)"
  mkdir -p "$(dirname "$out")"
  # shellcheck disable=SC2046 # the arch flags are words
  "$cc" "${CFLAGS[@]}" $(arch_flags "$arch") -o "$out.tmp" "$SRC"
  # .comment: the toolchain's crt files name their GCC (lintian binary-has-unneeded-section)
  "$strip" --strip-unneeded --remove-section=.comment "$out.tmp"
  [ "$arch" != armhf ] || check_armv6 "$out.tmp"
  mv "$out.tmp" "$out"
  echo "addon: $out ($(stat -c %s "$out") bytes)" >&2
done
