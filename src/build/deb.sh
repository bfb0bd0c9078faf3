#!/usr/bin/env bash
# Builds build/cloudjobs_<version>_<arch>.deb from the files in debian/ and
# systemd/ and, per arch:
#   amd64, arm64  the single executable build/cloudjobs-linux-{x64,arm64}
#                 (Node 24 embedded) as /usr/bin/cloudjobs, and the addon it
#                 embeds, build/native/{x64,arm64}/datagram.node, as
#                 /usr/lib/cloudjobs/datagram.node: the packaged executable
#                 loads that file in place (writing nothing; /run is noexec
#                 on a real boot) and never its embedded copy
#   armhf         the bundle build/bundle/armhf/cloudjobs.cjs and the ARMv6
#                 addon build/native/armhf/datagram.node in /usr/lib/cloudjobs,
#                 run by Debian's nodejs through the launcher /usr/bin/cloudjobs
#                 (no maintained ARMv7 Node can be embedded: README, Packaging)
#
# Usage: src/build/deb.sh ARCH [EXECUTABLE]
#   ARCH        amd64, arm64 or armhf
#   EXECUTABLE  amd64/arm64 only; defaults to build/cloudjobs-linux-<x64|arm64>
#
# A hand-built tree packed with dpkg-deb: file modes and owners are set here,
# Depends is computed from the ELF needs of the executable or addon (readelf),
# timestamps come from debian/changelog (SOURCE_DATE_EPOCH), so two builds are identical.
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"  # ROOT, BUILD, package_version, changelog_version

die() { echo "deb: $*" >&2; exit 1; }

# The oldest Node.js the bundle runs on: execa 9 needs 18.19; Debian bookworm has 18.20.4.
MIN_SYSTEM_NODE=18.19

[ $# -ge 1 ] && [ $# -le 2 ] || die "usage: src/build/deb.sh amd64|arm64|armhf [EXECUTABLE]"
ARCH=$1
case "$ARCH" in x64) ARCH=amd64 ;; armv7) ARCH=armhf ;; esac # the build's arch names work too
case "$ARCH" in
  amd64) NODE_ARCH=x64 MACHINE='X86-64' ;;
  arm64) NODE_ARCH=arm64 MACHINE='AArch64' ;;
  armhf) NODE_ARCH=armhf MACHINE='ARM' ;;
  *) die "unknown arch '$ARCH' (known: amd64 arm64 armhf)" ;;
esac
if [ "$ARCH" = armhf ]; then
  [ $# -eq 1 ] || die "armhf has no single executable: the package is built from build/bundle/armhf and build/native/armhf"
  BUNDLE=$BUILD/bundle/armhf/cloudjobs.cjs
  ADDON=$BUILD/native/armhf/datagram.node
  [ -f "$BUNDLE" ] || die "no bundle at $BUNDLE: build it first (make build/bundle/armhf/cloudjobs.cjs)"
  [ -f "$ADDON" ] || die "no addon at $ADDON: build it first (src/build/addon.sh armhf)"
  ELF=$ADDON
  grep -q "\"$(sha256sum "$ADDON" | cut -d' ' -f1)\"" "$BUNDLE" \
    || die "$BUNDLE was not built with $ADDON (its sha256 is not in the bundle): rebuild the bundle"
else
  EXE=${2:-$BUILD/cloudjobs-linux-$NODE_ARCH}
  [ -x "$EXE" ] || die "no executable at $EXE: build it first (make binaries)"
  ELF=$EXE
  ADDON=$BUILD/native/$NODE_ARCH/datagram.node
  [ -f "$ADDON" ] || die "no addon at $ADDON: build it first (src/build/addon.sh $NODE_ARCH)"
  # the executable accepts only the addon whose bytes it embeds (base64 in its bundle)
  grep -qF "$(base64 -w0 "$ADDON")" "$EXE" \
    || die "$EXE does not embed $ADDON: rebuild it (make build/cloudjobs-linux-$NODE_ARCH)"
  if [ -n "${CLOUDJOBS_VERSION:-}" ] && [ "$ARCH-$(uname -m)" = amd64-x86_64 ]; then
    "$EXE" --version | grep -q "^cloudjobs $CLOUDJOBS_VERSION " \
      || die "$EXE says '$("$EXE" --version)', not version $CLOUDJOBS_VERSION: rebuild it (make deb VERSION=$CLOUDJOBS_VERSION)"
  fi
fi
readelf -h "$ELF" | grep -q "Machine:.*$MACHINE" \
  || die "$ELF is not a $MACHINE object: $(readelf -h "$ELF" | grep Machine: | sed 's/ *Machine: *//')"

# --- version: package.json is the upstream version, debian/changelog adds the revision
UPSTREAM=$(package_version)
DEB_VERSION=$(changelog_version)
[ "${DEB_VERSION%-*}" = "$UPSTREAM" ] \
  || die "debian/changelog's top entry is $DEB_VERSION but package.json says $UPSTREAM: add a changelog entry"
# CLOUDJOBS_VERSION (make deb VERSION=x.y.z) builds another version of the same
# tree, for upgrade and downgrade tests; the executable must have been built with it.
if [ -n "${CLOUDJOBS_VERSION:-}" ] && [ "$CLOUDJOBS_VERSION" != "$UPSTREAM" ]; then
  DEB_VERSION="$CLOUDJOBS_VERSION-1"
fi
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

if [ "$ARCH" = armhf ]; then
  # exec keeps one process: systemd's MainPID (Type=notify, NotifyAccess=main) is node itself.
  mkdir -p "$WORK/launcher"
  printf '%s\n' '#!/bin/sh' \
    '# cloudjobs: the agent'"'"'s bundle run by the system'"'"'s Node.js (the armhf package embeds none).' \
    'exec /usr/bin/node /usr/lib/cloudjobs/cloudjobs.cjs "$@"' > "$WORK/launcher/cloudjobs"
  file 0755 "$WORK/launcher/cloudjobs" usr/bin/cloudjobs
  file 0644 "$BUNDLE" usr/lib/cloudjobs/cloudjobs.cjs
  file 0644 "$ADDON" usr/lib/cloudjobs/datagram.node
else
  file 0755 "$EXE" usr/bin/cloudjobs
  file 0644 "$ADDON" usr/lib/cloudjobs/datagram.node
fi
file 0644 "$ROOT/systemd/cloudjobs.service" lib/systemd/system/cloudjobs.service
file 0644 "$ROOT/systemd/cloudjobs-holds.conf" usr/lib/tmpfiles.d/cloudjobs.conf
dir etc/cloudjobs/handlers
# the public keys trusted to sign job documents (README, Signed jobs): empty until the owner adds one
dir etc/cloudjobs/trusted-keys.d
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
DEPENDS=$(deb_depends "$ELF")
if [ "$ARCH" = armhf ]; then
  DEPENDS="$DEPENDS, nodejs (>= $MIN_SYSTEM_NODE)"
  RUNTIME="The agent runs on the system's Node.js (package nodejs, $MIN_SYSTEM_NODE or later), which the distribution keeps up to date with security fixes; its native helper is built for ARMv6 with VFP, so it runs on every Raspberry Pi from the Pi 1 and Pi Zero W on."
else
  RUNTIME='The agent is one self-contained executable built with Node.js 24 LTS; it needs no Node.js installation.'
fi
sed -e "s/@VERSION@/$DEB_VERSION/" -e "s/@ARCH@/$ARCH/" -e "s/@INSTALLED_SIZE@/$INSTALLED_SIZE/" \
  -e "s/@DEPENDS@/$DEPENDS/" "$ROOT/debian/control" \
  | RUNTIME="$RUNTIME" awk '$0 == " @RUNTIME@" { n = split(ENVIRON["RUNTIME"], w, " "); line = ""
      for (i = 1; i <= n; i++) { if (length(line) + length(w[i]) + 1 > 72) { print " " line; line = w[i] } else line = line (line == "" ? "" : " ") w[i] }
      print " " line; next } { print }' > "$TREE/DEBIAN/control"
grep -q '@[A-Z_]*@' "$TREE/DEBIAN/control" && die "debian/control has an unreplaced @PLACEHOLDER@"
(cd "$TREE" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | LC_ALL=C sort -z \
  | xargs -0 md5sum | grep -v ' etc/' > DEBIAN/md5sums)
chmod 0644 "$TREE/DEBIAN/md5sums" "$TREE/DEBIAN/control"

find "$TREE" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
OUT="$BUILD/cloudjobs_${DEB_VERSION}_${ARCH}.deb"
# CLOUDJOBS_DEB_COMPRESS=gzip: test builds (other versions for upgrade tests) in
# seconds instead of minutes of xz on a 110 MB executable; releases use xz.
dpkg-deb --root-owner-group "-Z${CLOUDJOBS_DEB_COMPRESS:-xz}" --build "$TREE" "$OUT" >/dev/null
echo "$OUT"
