#!/usr/bin/env bash
# Builds the datagram N-API addon for each arch: build/native/<arch>/datagram.node.
# Usage: src/build/addon.sh [ARCH...]   (default: x64 arm64 armv7)
source "$(dirname "$0")/lib.sh"
SRC="$ROOT/src/service/datagram.c"
# Node's headers: the host's (nodejs package), else the pinned x64 package's copy.
NODE_INCLUDE="${NODE_INCLUDE:-/usr/include/node}"
[ -f "$NODE_INCLUDE/node_api.h" ] || die "node_api.h not found in $NODE_INCLUDE; set NODE_INCLUDE to a Node 20 include/node directory"
CFLAGS=(-shared -fPIC -O2 -Wall -Wextra -Werror -fstack-protector-strong -D_FORTIFY_SOURCE=2
  -fno-ident -ffile-prefix-map="$ROOT"=. -I"$NODE_INCLUDE" -Wl,-z,relro,-z,now -Wl,-z,noexecstack -Wl,--build-id=sha1)

[ $# -gt 0 ] || set -- "${ARCHES[@]}"
for arch in "$@"; do
  check_arch "$arch"
  out="$BUILD/native/$arch/datagram.node"
  newer "$out" "$SRC" "$0" "$ROOT/src/build/lib.sh" && continue
  cc=$(tool "$arch" gcc); strip=$(tool "$arch" strip)
  command -v "$cc" >/dev/null || die "$cc not found: install its cross compiler (make apt-deps)"
  mkdir -p "$(dirname "$out")"
  "$cc" "${CFLAGS[@]}" -o "$out.tmp" "$SRC"
  "$strip" --strip-unneeded "$out.tmp"
  mv "$out.tmp" "$out"
  echo "addon: $out ($(stat -c %s "$out") bytes)" >&2
done
