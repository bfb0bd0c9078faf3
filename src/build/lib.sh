# Shared helpers for the build scripts (sourced, not run). Arch names are the
# project's: x64, arm64, armv7. Pins come from node-pins.json only.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
PINS="$ROOT/src/build/node-pins.json"
BUILD="$ROOT/build"
# Downloaded Node packages survive `make clean`: keyed by package@version and verified on every use.
CACHE="${CLOUDJOBS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/cloudjobs}"
ARCHES=(x64 arm64 armv7)

die() { echo "build: $*" >&2; exit 1; }

# pin ARCH FIELD: prints one field of node-pins.json.
pin() {
  node -e 'const p=require(process.argv[1])[process.argv[2]]; if(!p) process.exit(3); const v=p[process.argv[3]]; if(v===undefined) process.exit(4); console.log(v ?? "")' \
    "$PINS" "$1" "$2" || die "node-pins.json has no $2 for arch '$1' (known: ${ARCHES[*]})"
}

# host_arch: the build machine's arch in the project's names.
host_arch() {
  case "$(uname -m)" in
    x86_64) echo x64 ;; aarch64) echo arm64 ;; armv7l | armv8l) echo armv7 ;;
    *) die "unsupported build machine $(uname -m)" ;;
  esac
}

check_arch() {
  case "$1" in x64 | arm64 | armv7) ;; *) die "unknown arch '$1' (known: ${ARCHES[*]})" ;; esac
}

# tool ARCH NAME: the (cross) binutils/gcc tool for ARCH, e.g. aarch64-linux-gnu-strip.
tool() {
  if [ "$1" = "$(host_arch)" ]; then echo "$2"; else echo "$(pin "$1" triplet)-$2"; fi
}

# run_target ARCH CMD...: runs a target executable, natively or under qemu-user with
# ONLY the cross packages' glibc (-L /usr/<triplet>); never mixed with multiarch libs.
run_target() {
  local arch=$1; shift
  if [ "$arch" = "$(host_arch)" ]; then "$@"; return; fi
  local qemu triplet
  qemu=$(pin "$arch" qemu); triplet=$(pin "$arch" triplet)
  [ -n "$qemu" ] || qemu=qemu-x86_64-static
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
