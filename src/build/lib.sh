# Shared helpers for the build scripts (sourced, not run). Arch names are the
# project's: x64 and arm64 get single executables (Node pinned in
# node-pins.json only); armhf gets the datagram addon and a bundle that runs on
# Debian's nodejs (no maintained ARMv7 Node can be embedded: README, Packaging).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
PINS="$ROOT/src/build/node-pins.json"
BUILD="$ROOT/build"
# Downloaded Node packages survive `make clean`: keyed by package@version and verified on every use.
CACHE="${CLOUDJOBS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/cloudjobs}"
ARCHES=(x64 arm64)              # single executables
ADDON_ARCHES=(x64 arm64 armhf)  # datagram addons and bundles

die() { echo "build: $*" >&2; exit 1; }

# package_version: the upstream version (package.json).
package_version() { node -p "require('$ROOT/package.json').version"; }

# changelog_version: the Debian version of debian/changelog's top entry (upstream-revision).
changelog_version() { sed -n '1s/^cloudjobs (\([^)]*\)).*/\1/p' "$ROOT/debian/changelog"; }

# built_deb ARCH: the .deb that `make deb` builds for the Debian ARCH at the changelog's version.
built_deb() { printf '%s/cloudjobs_%s_%s.deb\n' "$BUILD" "$(changelog_version)" "$1"; }

# pin ARCH FIELD: prints one field of node-pins.json.
pin() {
  node -e 'const p=require(process.argv[1])[process.argv[2]]; if(!p) process.exit(3); const v=p[process.argv[3]]; if(v===undefined) process.exit(4); console.log(v ?? "")' \
    "$PINS" "$1" "$2" || die "node-pins.json has no $2 for arch '$1' (known: ${ARCHES[*]})"
}

# host_arch: the build machine's arch in the project's names.
host_arch() {
  case "$(uname -m)" in
    x86_64) echo x64 ;; aarch64) echo arm64 ;; armv6l | armv7l | armv8l) echo armhf ;;
    *) die "unsupported build machine $(uname -m)" ;;
  esac
}

# check_arch ARCH: dies unless ARCH gets a single executable.
check_arch() {
  case "$1" in
    x64 | arm64) ;;
    armhf | armv7) die "no single executable for '$1': the armhf package runs build/bundle/armhf on Debian's nodejs" ;;
    *) die "unknown arch '$1' (known: ${ARCHES[*]})" ;;
  esac
}

# check_addon_arch ARCH: dies unless the addon and bundle are built for ARCH.
check_addon_arch() {
  case "$1" in x64 | arm64 | armhf) ;; *) die "unknown arch '$1' (known: ${ADDON_ARCHES[*]})" ;; esac
}

# triplet ARCH: the GNU triplet of ARCH's cross tools and libraries.
triplet() {
  case "$1" in
    x64) echo x86_64-linux-gnu ;; arm64) echo aarch64-linux-gnu ;; armhf) echo arm-linux-gnueabihf ;;
    *) die "no triplet for arch '$1'" ;;
  esac
}

# tool ARCH NAME: the (cross) binutils/gcc tool for ARCH, e.g. aarch64-linux-gnu-strip.
tool() {
  if [ "$1" = "$(host_arch)" ]; then echo "$2"; else echo "$(triplet "$1")-$2"; fi
}

# run_target ARCH CMD...: runs a target executable, natively or under qemu-user with
# ONLY the cross packages' glibc (-L /usr/<triplet>); never mixed with multiarch libs.
run_target() {
  local arch=$1; shift
  if [ "$arch" = "$(host_arch)" ]; then "$@"; return; fi
  local qemu triplet
  case "$arch" in x64) qemu=qemu-x86_64-static ;; arm64) qemu=qemu-aarch64-static ;; armhf) qemu=qemu-arm-static ;; esac
  triplet=$(triplet "$arch")
  command -v "$qemu" >/dev/null || die "$qemu not found: install qemu-user-static (make apt-deps)"
  [ -d "/usr/$triplet/lib" ] || die "/usr/$triplet/lib missing: install the $triplet cross runtime (make apt-deps)"
  "$qemu" -L "/usr/$triplet" "$@"
}

# newer OUT IN...: true when OUT exists and is newer than every IN.
newer() {
  local out=$1; shift
  [ -e "$out" ] || return 1
  local f
  for f in "$@"; do [ "$out" -nt "$f" ] || return 1; done
}
