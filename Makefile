# tpctl — see README.md. `make demo` and `make test` are the two entry points;
# both install what a fresh Debian 12 machine lacks (apt + npm ci) before they run.
SHELL := /bin/bash
.DEFAULT_GOAL := build

APT_PACKAGES := iptables nftables iproute2 libbpf1 util-linux procps
BPF_PACKAGES := clang llvm libbpf-dev linux-libc-dev
TEST_PACKAGES := bpftool python3
# The kernel-matrix VMs (scripts/vm): QEMU, a static busybox for the initramfs, kmod
# (depmod for the unpacked kernels, modprobe inside the guests).
VM_PACKAGES := qemu-system-x86 busybox-static kmod

# Kernels of the VM matrix (Debian 11, Debian 12, Debian 12 backports) and the suites
# each VM runs with TPCTL_TEST_ENGINES=ebpf. make test-vm runs VM_SUITES; make test (CI)
# runs CI_VM_SUITES there, within its time budget. kernel-support checks that each kernel
# gets the sockops netns check it supports (BTF inode on 5.10, cookie from 5.15).
KERNELS ?= 5.10 6.1 6.12
VM_SUITES ?= test/ebpf/kernel-support.test.ts test/e2e/conformance.test.ts test/ebpf/lifecycle.test.ts $(wildcard test/e2e/bypass.test.ts)
CI_VM_SUITES ?= test/ebpf/kernel-support.test.ts test/e2e/conformance.test.ts
# Plus the bypass suite on 5.10, the only kernel whose sockops checks the netns by inode
# (the host runs it with the cookie check): the first VM, it runs while 6.1 and 6.12 run
# one after the other in the second slot, so it adds little to the wall clock.
CI_VM_EXTRA ?= 5.10=test/e2e/bypass.test.ts
VM_REPORTS = $(foreach k,$(KERNELS),reports/vm/$(k)/vitest.json)

BPF_SRC := $(wildcard bpf/*.bpf.c)
BPF_OBJ := $(patsubst bpf/%.bpf.c,bpf/prebuilt/%.bpf.o,$(BPF_SRC))
BPF_HDR := $(wildcard bpf/include/*.h)
# -fdebug-prefix-map keeps the object byte-identical whatever the checkout path, so
# `make bpf-check` can compare a rebuild with the committed object.
BPF_CFLAGS := -O2 -g -target bpf -Wall -Werror -I bpf/include -I /usr/include/$(shell uname -m)-linux-gnu \
	-fdebug-prefix-map=$(CURDIR)=. -fno-ident

.PHONY: build typecheck deps deps-apt deps-npm bpf bpf-check test test-vm test-summary test-unit test-crash demo bench clean

deps: deps-apt deps-npm

# Installs only what is missing; a machine with everything skips apt entirely.
deps-apt:
	@missing=""; for p in $(APT_PACKAGES) $(BPF_PACKAGES) $(TEST_PACKAGES) $(VM_PACKAGES); do \
		dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" != 0 ]; then echo "missing Debian packages:$$missing (run as root or: sudo apt-get install$$missing)"; exit 1; fi; \
		echo "apt-get install$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

# package.json pins rollup (vitest's bundler) through "overrides": the npm registry
# mirror these machines use lacks some platform packages of newer rollup releases, and
# a lock file that names them without entries makes `npm ci` refuse to install.
deps-npm: node_modules/.package-lock.json

node_modules/.package-lock.json: package.json package-lock.json
	npm ci --no-audit --no-fund
	@touch $@

# tsc → dist/ (the library, the tests' CLI, sandbox tools), then the bundled CLI
# dist/tpctl.cjs that the `tpctl` bin runs (README: Start-up).
build: deps-npm
	npx tsc -p tsconfig.json
	node scripts/bundle.mjs

# Type-checks the tests too (tsconfig.test.json: src + test, no output).
typecheck: deps-npm
	npx tsc -p tsconfig.test.json

bpf/prebuilt/%.bpf.o: bpf/%.bpf.c $(BPF_HDR)
	@mkdir -p bpf/prebuilt
	clang $(BPF_CFLAGS) -c $< -o $@

bpf: $(BPF_OBJ)

# Rebuild every object into a scratch directory and fail if a committed one differs.
bpf-check:
	@tmp=$$(mktemp -d); trap 'rm -rf $$tmp' EXIT; stale=""; \
	for src in $(BPF_SRC); do \
		obj=$$tmp/$$(basename $${src%.c}).o; \
		clang $(BPF_CFLAGS) -c $$src -o $$obj || exit 1; \
		cmp -s $$obj bpf/prebuilt/$$(basename $$obj) || stale="$$stale $$(basename $$obj)"; \
	done; \
	if [ -n "$$stale" ]; then echo "stale bpf/prebuilt objects:$$stale (run make bpf and commit)"; exit 1; fi; \
	echo "bpf/prebuilt objects are up to date"

# Every suite on the host's kernel, then the eBPF conformance suite in one VM per
# kernel of the matrix; the last line counts both (a VM that fails to boot or times out
# counts as a failure).
test: deps build typecheck bpf-check
	@mkdir -p reports; rm -rf reports/vitest.json reports/vm
	npx vitest run; rc=$$?; \
	node scripts/vm/run.mjs --kernels "$(KERNELS)" --suites "$(CI_VM_SUITES)" --extra-suites "$(CI_VM_EXTRA)" || rc=1; \
	node scripts/test-summary.mjs reports/vitest.json $(VM_REPORTS); exit $$rc

# The privileged eBPF suites in QEMU VMs, one per kernel: KERNELS="5.10 6.1 6.12"
# (cached under .cache/vm), VM_ACCEL=auto|kvm|tcg. See README "Kernel matrix".
test-vm: deps build
	@mkdir -p reports; rm -rf reports/vm
	node scripts/vm/run.mjs --kernels "$(KERNELS)" --suites "$(VM_SUITES)"; rc=$$?; \
	node scripts/test-summary.mjs $(VM_REPORTS); exit $$rc

# The count line of the last make test (what .ci/run prints last).
test-summary:
	@node scripts/test-summary.mjs reports/vitest.json $(VM_REPORTS)

# Kills the real CLI with SIGKILL at every step of install and uninstall, for every
# engine, and checks both recovery paths (make test runs a sample of the eBPF steps).
test-crash: deps build typecheck
	TPCTL_CRASH_STEPS=all npx vitest run test/e2e/crash.test.ts

# Only the tests that need no root (checked by running them as nobody).
UNIT_TESTS := test/config test/net test/host/interfaces.test.ts test/host/kernel.test.ts test/host/mounts.test.ts \
	test/host/users.test.ts test/iptables/backend.test.ts test/iptables/render.test.ts \
	test/iptables/save.test.ts test/iptables/canonical.test.ts test/iptables/firewalld.test.ts test/iptables/record.test.ts test/nftables/render.test.ts test/nftables/listing.test.ts test/ebpf/listeners.test.ts test/ebpf/object.test.ts test/ebpf/abi.test.ts test/ebpf/libbpf-structs.test.ts test/ebpf/preflight.test.ts test/ebpf/spec.test.ts test/ebpf/map-limits.test.ts \
	test/sandbox/harness.test.ts test/sandbox/timeout-scale.test.ts test/scripts/test-summary.test.ts \
	test/steps.test.ts test/host/private-dir.test.ts test/ebpf/pin-dir.test.ts test/layering.test.ts

test-unit: build typecheck
	npx vitest run $(UNIT_TESTS)

demo: deps build
	node dist/sandbox/demo.js $(DEMO_ARGS)

bench: deps build
	node dist/bench/run.js

clean:
	rm -rf dist reports
