#!/usr/bin/env bash
# Builds build/cloudjobs_<version>_<arch>.deb from the single executable
# build/cloudjobs-linux-{x64,arm64,armv7} and the files in debian/ and systemd/.
#
# Usage: src/build/deb.sh ARCH [EXECUTABLE]
#   ARCH        amd64, arm64 or armhf
#   EXECUTABLE  defaults to build/cloudjobs-linux-<x64|arm64|armv7>
#
# A hand-built tree packed with dpkg-deb: file modes and owners are set here,
# Depends is computed from the executable's ELF needs (readelf), timestamps
# come from debian/changelog (SOURCE_DATE_EPOCH), so two builds are identical.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
BUILD="$ROOT/build"

die() { echo "deb: $*" >&2; exit 1; }

[ $# -ge 1 ] && [ $# -le 2 ] || die "usage: src/build/deb.sh amd64|arm64|armhf [EXECUTABLE]"
ARCH=$1
case "$ARCH" in x64) ARCH=amd64 ;; armv7) ARCH=armhf ;; esac # the build's arch names work too
case "$ARCH" in
  amd64) NODE_ARCH=x64 MACHINE='X86-64' ;;
  arm64) NODE_ARCH=arm64 MACHINE='AArch64' ;;
  armhf) NODE_ARCH=armv7 MACHINE='ARM' ;;
  *) die "unknown arch '$ARCH' (known: amd64 arm64 armhf)" ;;
esac
EXE=${2:-$BUILD/cloudjobs-linux-$NODE_ARCH}
[ -x "$EXE" ] || die "no executable at $EXE: build it first (make binaries)"
readelf -h "$EXE" | grep -q "Machine:.*$MACHINE" \
  || die "$EXE is not a $MACHINE executable: $(readelf -h "$EXE" | grep Machine: | sed 's/ *Machine: *//')"

# --- version: package.json is the upstream version, debian/changelog adds the revision
UPSTREAM=$(node -p "require('$ROOT/package.json').version")
DEB_VERSION=$(sed -n '1s/^cloudjobs (\([^)]*\)).*/\1/p' "$ROOT/debian/changelog")
[ "${DEB_VERSION%-*}" = "$UPSTREAM" ] \
  || die "debian/changelog's top entry is $DEB_VERSION but package.json says $UPSTREAM: add a changelog entry"
CHANGELOG_DATE=$(sed -n 's/^ -- .*>  //p' "$ROOT/debian/changelog" | head -n1)
SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(date -d "$CHANGELOG_DATE" +%s)}
export SOURCE_DATE_EPOCH

# --- Depends from the executable's DT_NEEDED and symbol versions
# deb_depends EXE: prints the Depends line. Library -> package and symbol
# version -> package version (glibc: same number; libgcc: GCC_x.y is GCC x.y;
# libstdc++: GLIBCXX_3.4.N by the table in libstdc++'s ABI documentation).
deb_depends() {
  local exe=$1 needed lib ver deps=()
  needed=$(readelf -d "$exe" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p')
  # highest version needed from each library file
  max_version() {
    readelf -V "$exe" | awk -v file="$1" -v prefix="$2" '
      /File: / { cur = $0; sub(/.*File: /, "", cur); sub(/ .*/, "", cur); next }
      cur == file && $0 ~ "Name: " prefix "_" { sub(".*Name: " prefix "_", ""); sub(" .*", ""); print }' \
      | sort -V | tail -n1
  }
  local glibc=0
  for lib in $needed; do
    case "$lib" in
      libc.so.6 | libm.so.6 | libdl.so.2 | libpthread.so.0 | librt.so.1 | ld-linux*.so.* )
        ver=$(max_version "$lib" GLIBC)
        if [ -n "$ver" ] && { [ "$glibc" = 0 ] || [ "$(printf '%s\n%s\n' "$glibc" "$ver" | sort -V | tail -n1)" = "$ver" ]; }; then glibc=$ver; fi ;;
      libstdc++.so.6)
        ver=$(max_version "$lib" GLIBCXX)
        deps+=("libstdc++6 (>= $(gcc_of_glibcxx "${ver:-3.4}"))") ;;
      libgcc_s.so.1)
        ver=$(max_version "$lib" GCC)
        deps+=("libgcc-s1 (>= ${ver:-3.0})") ;;
      libatomic.so.1) deps+=("libatomic1 (>= 4.8)") ;;
      libsystemd.so.0) deps+=("libsystemd0") ;;
      *) die "$exe needs $lib, which deb.sh does not know how to depend on: add it to deb_depends" ;;
    esac
  done
  [ "$glibc" != 0 ] || die "$exe needs no versioned glibc symbol: not a glibc executable?"
  printf '%s' "adduser, libc6 (>= $glibc)"
  local d
  for d in "${deps[@]}"; do printf ', %s' "$d"; done
}

# gcc_of_glibcxx 3.4.N: the GCC release that introduced GLIBCXX_3.4.N.
gcc_of_glibcxx() {
  case "$1" in
    3.4 | 3.4.[0-9] | 3.4.1[0-7]) echo 4.1 ;;
    3.4.18) echo 4.8 ;; 3.4.19) echo 4.8.3 ;; 3.4.20) echo 4.9 ;; 3.4.21) echo 5 ;;
    3.4.22) echo 6 ;; 3.4.23) echo 7 ;; 3.4.24) echo 7.2 ;; 3.4.25) echo 8 ;;
    3.4.26) echo 9 ;; 3.4.27) echo 9.2 ;; 3.4.28) echo 9.3 ;; 3.4.29) echo 11 ;;
    3.4.30) echo 12 ;; 3.4.31) echo 13 ;;
    *) die "GLIBCXX_$1 is newer than deb.sh's table: extend gcc_of_glibcxx" ;;
  esac
}

# --- the tree
WORK="$BUILD/deb/$ARCH"
TREE="$WORK/root"
rm -rf "$WORK"
mkdir -p "$TREE/DEBIAN"

dir() { install -d -m 0755 "$TREE/$1"; }
file() { install -D -m "$1" "$2" "$TREE/$3"; }

file 0755 "$EXE" usr/bin/cloudjobs
file 0644 "$ROOT/systemd/cloudjobs.service" lib/systemd/system/cloudjobs.service
dir etc/cloudjobs/handlers
dir usr/lib/cloudjobs/handlers
for handler in "$ROOT"/debian/handlers/*; do
  file 0755 "$handler" "usr/lib/cloudjobs/handlers/$(basename "$handler")"
done

# agent.ini: the commented sample rendered from the config schema. It may come
# to hold an API key, so only root reads it.
mkdir -p "$WORK/render"
"$ROOT/node_modules/.bin/esbuild" "$ROOT/src/config/render.ts" --bundle --platform=node --format=cjs \
  --log-level=warning --outfile="$WORK/render/render.cjs"
node -e 'process.stdout.write(require(process.argv[1]).renderSampleIni())' "$WORK/render/render.cjs" > "$WORK/agent.ini"
grep -q '^\[cloud\]' "$WORK/agent.ini" || die "rendered agent.ini has no [cloud] section"
file 0640 "$WORK/agent.ini" etc/cloudjobs/agent.ini

install -d -m 0755 "$TREE/usr/share/man/man1" "$TREE/usr/share/doc/cloudjobs" "$TREE/usr/share/lintian/overrides"
gzip -9n < "$ROOT/debian/cloudjobs.1" > "$TREE/usr/share/man/man1/cloudjobs.1.gz"
gzip -9n < "$ROOT/debian/changelog" > "$TREE/usr/share/doc/cloudjobs/changelog.Debian.gz"
install -m 0644 "$ROOT/debian/copyright" "$TREE/usr/share/doc/cloudjobs/copyright"
install -m 0644 "$ROOT/debian/lintian-overrides" "$TREE/usr/share/lintian/overrides/cloudjobs"
chmod 0644 "$TREE/usr/share/man/man1/cloudjobs.1.gz" "$TREE/usr/share/doc/cloudjobs/changelog.Debian.gz"

# --- control area
for script in postinst prerm postrm; do
  install -m 0755 "$ROOT/debian/$script" "$TREE/DEBIAN/$script"
done
install -m 0644 "$ROOT/debian/conffiles" "$TREE/DEBIAN/conffiles"
INSTALLED_SIZE=$(du -sk --apparent-size --exclude=DEBIAN "$TREE" | cut -f1)
DEPENDS=$(deb_depends "$EXE")
sed -e "s/@VERSION@/$DEB_VERSION/" -e "s/@ARCH@/$ARCH/" -e "s/@INSTALLED_SIZE@/$INSTALLED_SIZE/" \
  -e "s/@DEPENDS@/$DEPENDS/" "$ROOT/debian/control" > "$TREE/DEBIAN/control"
(cd "$TREE" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | LC_ALL=C sort -z \
  | xargs -0 md5sum | grep -v ' etc/' > DEBIAN/md5sums)
chmod 0644 "$TREE/DEBIAN/md5sums" "$TREE/DEBIAN/control"

find "$TREE" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
OUT="$BUILD/cloudjobs_${DEB_VERSION}_${ARCH}.deb"
dpkg-deb --root-owner-group -Zxz --build "$TREE" "$OUT" >/dev/null
echo "$OUT"
