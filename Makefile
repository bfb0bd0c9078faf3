# cloudjobs build, test and packaging. `make demo` and `make test` work from a
# fresh clone; every tool they need is installed here (apt and npm only).
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := build
# `make deb VERSION=x.y.z` builds the same tree as another version (upgrade tests).
VERSION ?= $(shell node -p "require('./package.json').version")
export CLOUDJOBS_VERSION := $(VERSION)
# Changes (and so rebuilds the bundles) only when VERSION does.
VERSION_STAMP := $(shell mkdir -p build && [ "$$(cat build/.version 2>/dev/null)" = "$(VERSION)" ] || echo "$(VERSION)" > build/.version; echo build/.version)
HOST_ARCH := $(shell uname -m | sed -e 's/x86_64/x64/' -e 's/aarch64/arm64/' -e 's/armv[678]l/armhf/')
# Single executables (Node 24 embedded). armhf has none: its package runs
# build/bundle/armhf/cloudjobs.cjs on Debian's nodejs (README, Packaging).
ARCHES := x64 arm64
# `make deb ARCH=arm64` builds one package; the default builds all three.
ARCH ?= all
DEB_ARCHES := $(if $(filter all,$(ARCH)),amd64 arm64 armhf,$(ARCH))
VITEST := node_modules/.bin/vitest
ESBUILD := node_modules/.bin/esbuild
TS_SOURCES := $(shell find src -name '*.ts') package.json
CLOUD_SOURCES := $(shell find test/cloud -name '*.ts')

# Keep the per-arch addons and bundles that pattern rules make on the way: make
# would delete them as intermediates and rebuild every executable next time.
.SECONDARY:
# No built-in rules: the suffix rule `%: %.sh` would overwrite the handler
# debian/handlers/reboot with its sibling reboot.sh (both are DEB_INPUTS).
.SUFFIXES:
MAKEFLAGS += --no-builtin-rules

.PHONY: all deps apt-deps build binaries deb test test-suites rootfs unit typecheck e2e qemu-test integration vm demo bench clean

all: build

# --- dependencies ---------------------------------------------------------
node_modules/.stamp: package.json package-lock.json
	npm ci --no-audit --no-fund
	touch $@

deps: node_modules/.stamp

# Debian packages the build and tests use; installed only when missing.
APT_PACKAGES := qemu-user-static lintian systemd-container debootstrap \
  gcc-aarch64-linux-gnu gcc-arm-linux-gnueabihf libc6-dev-arm64-cross libc6-dev-armhf-cross \
  libatomic1-armhf-cross libstdc++6-armhf-cross libstdc++6-arm64-cross \
  binutils-aarch64-linux-gnu binutils-arm-linux-gnueabihf dpkg-dev fakeroot openssl iproute2 \
  python3 util-linux procps jq curl xz-utils
# promtool checks /metrics, node_exporter reads the textfile (issue 23, test/e2e/metrics.test.ts)
APT_PACKAGES += prometheus prometheus-node-exporter
# the broker the push tests and the demo publish job notifications through (issue 13)
APT_PACKAGES += mosquitto
# the VM tests (test/vm): Debian booted in qemu, the guest reaching the cloud through socat (issue 19)
APT_PACKAGES += qemu-system-x86 socat e2fsprogs
apt-deps:
	@src/build/apt-deps.sh $(APT_PACKAGES)

# --- single executables ---------------------------------------------------
build/native/%/datagram.node: src/service/datagram.c src/build/addon.sh | apt-deps
	src/build/addon.sh $*

build/bundle/%/cloudjobs.cjs: $(TS_SOURCES) build/native/%/datagram.node src/build/bundle.mjs debian/changelog $(VERSION_STAMP) | deps
	node src/build/bundle.mjs $*

build/cloudjobs-linux-%: build/bundle/%/cloudjobs.cjs src/build/sea.sh src/build/node-pins.json src/build/lib.sh | apt-deps
	src/build/sea.sh $*

build/cloudjobs: build/cloudjobs-linux-$(HOST_ARCH)
	cp --preserve=mode $< $@

build/reference-cloud.cjs: $(CLOUD_SOURCES) | deps
	$(ESBUILD) test/cloud/main.ts --bundle --platform=node --format=cjs --target=node20 --log-level=warning --outfile=$@

build: build/cloudjobs

binaries: $(addprefix build/cloudjobs-linux-,$(ARCHES)) build/cloudjobs

# --- Debian packages --------------------------------------------------------
DEB_INPUTS := $(shell find debian systemd -type f) src/build/deb.sh src/config/schema.ts src/config/render.ts package.json
DEB_FILE = build/cloudjobs_$(VERSION)-1_$(1).deb

$(call DEB_FILE,amd64): build/cloudjobs-linux-x64 build/native/x64/datagram.node $(DEB_INPUTS) | deps apt-deps
	src/build/deb.sh amd64
$(call DEB_FILE,arm64): build/cloudjobs-linux-arm64 build/native/arm64/datagram.node $(DEB_INPUTS) | deps apt-deps
	src/build/deb.sh arm64
$(call DEB_FILE,armhf): build/bundle/armhf/cloudjobs.cjs build/native/armhf/datagram.node $(DEB_INPUTS) | deps apt-deps
	src/build/deb.sh armhf

deb: $(foreach a,$(DEB_ARCHES),$(call DEB_FILE,$(a)))

# --- tests ------------------------------------------------------------------
typecheck: deps
	node_modules/.bin/tsc --noEmit -p .

unit: deps apt-deps
	$(VITEST) run --config test/vitest.config.ts

e2e: build build/reference-cloud.cjs
	$(VITEST) run --config test/vitest.e2e.config.ts

qemu-test: binaries build/bundle/armhf/cloudjobs.cjs
	test/qemu/run.sh

# lintian --pedantic on the three packages; the amd64 package under systemd
# (nspawn) on bookworm and trixie; the arm64 package (trixie) and the armhf
# package (bookworm, trixie: Debian's nodejs) installed with apt in qemu-user chroots.
integration: apt-deps deb build/reference-cloud.cjs
	test/integration/run.sh

# The amd64 package in Debian VMs (qemu, TCG; Debian's kernel and initramfs):
# real boots, power cuts, reboots, a clock without RTC (test/vm/run.sh).
vm: apt-deps deb build/reference-cloud.cjs
	test/vm/run.sh

# The Debian trees that qemu-test, integration and vm boot (debootstrap, cached
# in /var/cache/cloudjobs-it; the missing ones only, side by side).
rootfs: apt-deps
	test/integration/build-rootfs.sh

# On a fresh machine the trees build in the background (nice 19, in their own
# process group, log build/rootfs.log) while typecheck, unit and e2e use the
# CPU; a suite that needs a tree still being built waits on its lock. The
# build stops with `make test`, whatever its end.
test: apt-deps deps
	@mkdir -p build; setsid nice -n 19 test/integration/build-rootfs.sh > build/rootfs.log 2>&1 & rootfs=$$!; \
	trap 'kill -TERM -- -'$$rootfs' 2>/dev/null || true' EXIT; \
	$(MAKE) --no-print-directory test-suites; \
	grep -h '^rootfs: .* \(took\|ready after\|failed\)' build/rootfs.log || true

# integration and vm side by side: the VM tests keep the two cores busy only
# while a guest boots, the integration tests mostly wait on their containers;
# each one's output is printed whole when it ends.
test-suites: typecheck unit e2e qemu-test
	$(MAKE) --no-print-directory -j2 --output-sync=target integration vm
	@echo "make test: every suite passed"

# --- demo and benchmarks -----------------------------------------------------
demo: build build/reference-cloud.cjs
	node test/demo/demo.mjs

bench: binaries deb
	test/bench/run.sh

clean:
	rm -rf build
