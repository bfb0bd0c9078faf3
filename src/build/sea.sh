#!/usr/bin/env bash
# Assembles one single executable: the bundle becomes a SEA blob made by the
# TARGET's own node (qemu-user for arm: 32-bit blobs differ, and a code cache
# is V8-build specific), injected with postject into the stripped, verified
# official Node binary. Usage: src/build/sea.sh ARCH [BUNDLE] [OUT]
#   default BUNDLE build/bundle/<arch>/cloudjobs.cjs, OUT build/cloudjobs-linux-<arch>
source "$(dirname "$0")/lib.sh"
arch=${1:?usage: sea.sh ARCH [BUNDLE] [OUT]}
check_arch "$arch"
bundle=$(realpath -m "${2:-$BUILD/bundle/$arch/cloudjobs.cjs}")
out=$(realpath -m "${3:-$BUILD/cloudjobs-linux-$arch}")
[ -f "$bundle" ] || die "$bundle is missing; run src/build/bundle.mjs $arch first"
node_bin=$("$(dirname "$0")/fetch-node.sh" "$arch")
newer "$out" "$bundle" "$node_bin" "$0" "$ROOT/src/build/lib.sh" && exit 0

# The sentinel every Node SEA-capable binary carries (node/src/node_sea.cc).
FUSE=NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2
work="$out.sea"
rm -rf "$work"; mkdir -p "$work"
trap 'rm -rf "$work"' EXIT
# The blob records main's path (stack traces show it): a fixed relative name keeps
# the bytes independent of where the checkout lives.
cp "$bundle" "$work/cloudjobs.cjs"
# A code cache: V8-build specific, so it is made by the target's own node (under qemu for
# arm, like the blob). Without it V8 pre-parses the whole bundle at every start (about
# 100 ms of `cloudjobs --version` on the x64 build machine, 320 -> 210 ms) and touches
# more of its parser (figure 1: about 1 MiB less resident). A V8 with other flags
# (NODE_OPTIONS) rejects the cache and compiles as before. No snapshot: it would need the
# entry rewritten for v8.startupSnapshot.
cat >"$work/sea-config.json" <<JSON
{
  "main": "cloudjobs.cjs",
  "output": "blob",
  "disableExperimentalSEAWarning": true,
  "useSnapshot": false,
  "useCodeCache": true
}
JSON
(cd "$work" && run_target "$arch" "$node_bin" --experimental-sea-config sea-config.json) >"$work/sea.log" 2>&1 \
  || { cat "$work/sea.log" >&2; die "the $arch node could not make the SEA blob"; }
cp "$node_bin" "$work/exe"
"$ROOT/node_modules/.bin/postject" "$work/exe" NODE_SEA_BLOB "$work/blob" --sentinel-fuse "$FUSE" >"$work/postject.log" 2>&1 \
  || { cat "$work/postject.log" >&2; die "postject could not inject the blob into the $arch node"; }
chmod 0755 "$work/exe"
mv "$work/exe" "$out"
echo "sea: ${out#"$ROOT/"} ($(stat -c %s "$out") bytes)" >&2
