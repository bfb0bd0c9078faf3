#!/usr/bin/env bash
# Installs the Debian packages named as arguments that are not installed yet.
# Needs root only when something is missing.
set -euo pipefail
missing=()
for pkg in "$@"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
  echo "apt-deps: missing Debian packages: ${missing[*]}; install them as root (sudo apt-get install ${missing[*]})" >&2
  exit 1
fi
echo "apt-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
