#!/usr/bin/env bash
# Fetches the pinned official Node binary for ARCH from the npm registry
# (`npm pack node-linux-<arch>@<version>`), verifies the sha256 that
# node-pins.json pins for the extracted bin/node (fails on any mismatch),
# strips it (before SEA injection: stripping after would damage the injected
# blob) and checks the stripped binary still runs on the target (qemu for arm).
# Prints the stripped binary's path. Usage: src/build/fetch-node.sh ARCH
source "$(dirname "$0")/lib.sh"
arch=${1:?usage: fetch-node.sh ARCH}
check_arch "$arch"
pkg=$(pin "$arch" package); version=$(pin "$arch" version); want=$(pin "$arch" sha256)
dir="$CACHE/node/$pkg-$version"
node_bin="$dir/node"
stripped="$dir/node.stripped"
mkdir -p "$dir"

verify() {
  local got
  got=$(sha256sum "$1" | cut -d' ' -f1)
  [ "$got" = "$want" ] && return 0
  echo "build: $pkg@$version: bin/node has sha256 $got but src/build/node-pins.json pins $want." >&2
  echo "build: refusing to build with an unverified Node. If the pin is outdated, update it deliberately;" >&2
  echo "build: otherwise the package changed upstream or the cache is damaged (remove $dir and retry)." >&2
  return 1
}

if [ ! -f "$node_bin" ]; then
  echo "fetch-node: npm pack $pkg@$version" >&2
  tmp=$(mktemp -d "$dir/fetch.XXXXXX")
  trap 'rm -rf "$tmp"' EXIT
  (cd "$tmp" && npm pack --silent "$pkg@$version" >/dev/null) || die "npm pack $pkg@$version failed (the npm registry must be reachable)"
  tar -xzf "$tmp/$pkg-$version.tgz" -C "$tmp" package/bin/node
  verify "$tmp/package/bin/node" || exit 1
  mv "$tmp/package/bin/node" "$node_bin"
  rm -rf "$tmp"
  trap - EXIT
fi
verify "$node_bin" || exit 1

if ! newer "$stripped" "$node_bin"; then
  "$(tool "$arch" strip)" --strip-all -o "$stripped.tmp" "$node_bin"
  chmod 0755 "$stripped.tmp"
  ran=$(run_target "$arch" "$stripped.tmp" -p 'process.version + " " + process.arch') \
    || die "the stripped $pkg@$version does not run${arch:+ on $arch}"
  [ "$ran" = "v$version $(pin "$arch" package | sed 's/node-linux-//; s/armv7l/arm/')" ] \
    || die "the stripped $pkg@$version says '$ran', expected v$version"
  mv "$stripped.tmp" "$stripped"
fi
echo "$stripped"
