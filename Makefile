# SPDX-License-Identifier: GPL-2.0
# Overcast: build, lab and tests. `make help` lists the targets.
#
# Cached outside the clone, in $(OVERCAST_CACHE) (default /var/cache/overcast): the Linux source, the kernel build
# (keyed on what it is built from, see scripts/build-kernel), the Xen image and the lab's root filesystems.

OVERCAST_CACHE ?= /var/cache/overcast
export OVERCAST_CACHE
SHELL := /bin/bash
TOP := $(CURDIR)

RUSTC_K    ?= /usr/bin/rustc
RUSTDOC_K  ?= /usr/bin/rustdoc
BINDGEN_K  ?= $(shell [ -x $(HOME)/.cargo/bin/bindgen ] && echo $(HOME)/.cargo/bin/bindgen || command -v bindgen)
export LIBCLANG_PATH ?= /usr/lib/llvm-19/lib
KTOOLS := RUSTC=$(RUSTC_K) HOSTRUSTC=$(RUSTC_K) RUSTDOC=$(RUSTDOC_K) BINDGEN=$(BINDGEN_K)

# KDIR: any Rust-enabled 7.x kernel build tree; by default our lab kernel (built on demand by `make kernel`).
KDIR ?= $(shell scripts/build-kernel --path 2>/dev/null)
XEN_ELF ?= $(OVERCAST_CACHE)/xen/xen.elf
LAB := $(or $(CARGO_TARGET_DIR),target)/release/overcast-lab
LAB_OUT := target/lab

.PHONY: all help setup kernel kernel-path modules bindings clean test test-host test-kunit test-lab demo lab-tool \
        check-setup modules-clean bench-vwire bench-coopswap bench-blanket

all: modules

help:
	@echo "make setup        install toolchain, QEMU, Xen, kernel source (idempotent)"
	@echo "make kernel       build the lab kernel (cached in $(OVERCAST_CACHE)/kernel/<key>)"
	@echo "make modules      build vwire.ko, coopswap.ko, blanket.ko against KDIR (default: the lab kernel)"
	@echo "make test         host cargo tests + KUnit in the lab + lab scenarios; ends with 'N passed, N failed'"
	@echo "make bench-vwire | bench-coopswap | bench-blanket"
	@echo "                  lab benchmarks, ours against the kernel's reference in the same run (Documentation/)"
	@echo "make demo         boot the nested lab (QEMU -> Xen 4.17 -> our Dom0 -> a PV guest) and show the suite"

check-setup:
	@scripts/setup --check >/dev/null 2>&1 || scripts/setup

setup:
	scripts/setup

kernel: check-setup
	@scripts/build-kernel

kernel-path:
	@scripts/build-kernel --path

# Our own bindgen run over our own helper header: the Rust declarations of the C helpers in rust/helpers/.
bindings: rust/generated/bindings.rs
rust/generated/bindings.rs: $(wildcard rust/helpers/*.h) scripts/gen-bindings
	scripts/gen-bindings $(BINDGEN_K) rust/helpers/overcast_helpers.h $@

modules: bindings
	@if [ -z "$(KDIR)" ]; then $(MAKE) --no-print-directory kernel >/dev/null; fi
	$(MAKE) -C $${KDIR:-$$(scripts/build-kernel --path)} M=$(TOP) $(KTOOLS) modules

modules-clean:
	@k=$${KDIR:-$$(scripts/build-kernel --path 2>/dev/null)}; [ -z "$$k" ] || $(MAKE) -C $$k M=$(TOP) clean

clean: modules-clean
	rm -rf rust/generated target/lab

lab-tool:
	cargo build --release -q -p overcast-lab

# ---- tests ------------------------------------------------------------------------------------------------------
# Each step writes target/test-results/<step>.counts ("passed failed"); scripts/test-summary adds them up.
test:
	@scripts/run-tests

test-host:
	@scripts/run-tests host

test-kunit test-lab:
	@scripts/run-tests lab

demo: modules lab-tool
	scripts/demo

# ---- benchmarks ---------------------------------------------------------------------------------------------------
# Not part of `make test`: each boots the lab, measures ours and the reference side by side, and prints a table that
# goes into Documentation/ with the command (see ../shared/notes/measuring.md for the rules).
bench-vwire bench-coopswap bench-blanket: modules lab-tool
	scripts/$@
