# cloudjobs build, test and packaging. `make demo` and `make test` work from a
# fresh clone; every tool they need is installed here (apt and npm only).
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
VERSION := $(shell node -p "require('./package.json').version")
ARCH ?= all
VITEST := node_modules/.bin/vitest

.PHONY: all deps apt-deps build binaries deb test unit typecheck e2e qemu-test integration demo bench clean

all: build

# --- dependencies ---------------------------------------------------------
node_modules/.stamp: package.json package-lock.json
	npm ci --no-audit --no-fund
	touch $@

deps: node_modules/.stamp

# Debian packages the build and tests use; installed only when missing.
APT_PACKAGES := qemu-user-static lintian systemd-container debootstrap \
  gcc-aarch64-linux-gnu gcc-arm-linux-gnueabihf libc6-dev-arm64-cross libc6-dev-armhf-cross \
  binutils-aarch64-linux-gnu binutils-arm-linux-gnueabihf dpkg-dev fakeroot openssl iproute2
apt-deps:
	@src/build/apt-deps.sh $(APT_PACKAGES)

typecheck: deps
	node_modules/.bin/tsc --noEmit -p .

clean:
	rm -rf build
