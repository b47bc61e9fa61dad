# podvisor build, run and test entry points. The engine, registry and images
# are described in DESIGN.md §6; the scripts under scripts/ do the work.
#
#   make test          fmt + clippy, then everything incl. end-to-end tests
#                      against a Docker engine (private one started if needed)
#   make unit          unit tests only, no engine
#   make setup         install what scripts/packages.list names and is missing
#   make fresh-check   purge the list's packages, wipe the engine, run .ci/run
#                      in a fresh clone: proves the set-up on a fresh machine
#   make run           run the node agent with config/podvisor.toml
#   make stop-engine   stop the private dockerd; clean-engine also wipes it
#   make fuzz          fuzz the manifest reader and the API query parsers, FUZZ_TIME seconds each
#                      (cargo-fuzz on stable with RUSTC_BOOTSTRAP=1)
#   make chaos         SIGKILLs while pods converge, then 500 random manifest
#                      edits: no duplicate, leaked container, dir, mount or RSS

# --- variables ---------------------------------------------------------------
# DOCKER_HOST: an engine to use when it answers; otherwise (or when empty)
# scripts/ensure-env.sh starts the private one at
# unix://$(PODVISOR_STATE)/dockerd/docker.sock and uses that.
DOCKER_HOST ?=
PODVISOR_STATE ?= /tmp/podvisor-dev
PODVISOR_PAUSE_IMAGE ?= podvisor.local/pause:1
PODVISOR_BUSYBOX_IMAGE ?= podvisor.local/busybox:1
CONFIG ?= config/podvisor.toml
CARGO ?= cargo
FEATURES ?= test-util
# Seconds `make fuzz` runs the fuzzer.
FUZZ_TIME ?= 600
export FUZZ_TIME
export PODVISOR_STATE PODVISOR_PAUSE_IMAGE PODVISOR_BUSYBOX_IMAGE

SHELL := bash
.SHELLFLAGS := -euo pipefail -c
# Sets DOCKER_HOST (and the image variables) in a recipe line, failing the
# line when ensure-env fails (a bare `eval "$(...)"` would hide that).
ENSURE_ENV = envlines="$$(scripts/ensure-env.sh)"; eval "$$envlines"

.PHONY: all build run test unit bench fuzz chaos setup fresh-check toolchain env images registry stop-registry stop-engine clean-engine

all: build

build:
	$(CARGO) build --release --bin podvisor

run: setup
	@test -f "$(CONFIG)" || { echo "error: $(CONFIG) not found" >&2; exit 1; }
	$(ENSURE_ENV); \
	$(CARGO) build --release --bin podvisor; \
	echo "DOCKER_HOST=$$DOCKER_HOST" >&2; \
	exec target/release/podvisor run --config "$(CONFIG)"

test: setup toolchain
	$(CARGO) fmt --check
	$(CARGO) clippy --all-targets --features $(FEATURES) -- -D warnings
	# The binary as `make run` builds it: without the test features.
	$(CARGO) clippy --bins -- -D warnings
	$(ENSURE_ENV); \
	echo "DOCKER_HOST=$$DOCKER_HOST" >&2; \
	log="$$(mktemp)"; \
	PODVISOR_E2E=1 $(CARGO) test --no-fail-fast --features $(FEATURES) 2>&1 | tee "$$log" && status=0 || status=$$?; \
	awk '/^test result:/ { p += $$4; f += $$6 } END { printf "tests: %d passed, %d failed\n", p, f }' "$$log"; \
	rm -f "$$log"; \
	exit $$status

unit:
	$(CARGO) test --lib --features $(FEATURES)

# The benches run the release binary as `make run` builds it (a copy:
# `cargo bench` builds its own into the same directory).
bench: setup
	$(CARGO) build --release
	target="$${CARGO_TARGET_DIR:-$(CURDIR)/target}"; \
	cp "$$target/release/podvisor" "$$target/podvisor-release"; \
	$(ENSURE_ENV); \
	PODVISOR_BIN="$$target/podvisor-release" \
	$(CARGO) bench --features $(FEATURES) --bench converge --bench latency --bench idle --bench engine

# Exits non-zero on a crash, naming the saved input under fuzz/artifacts/.
fuzz:
	scripts/fuzz.sh

# Against the engine of ensure-env; seeded (CHAOS_SEED), bounded, cleans up.
chaos: setup
	scripts/chaos.sh

# Everything the scripts and tests run comes from the base system or from
# this one list; see its header.
setup:
	@scripts/setup.sh

fresh-check:
	scripts/fresh-check.sh

toolchain:
	@$(CARGO) --version >/dev/null 2>&1 || { echo "error: cargo not found; install a Rust toolchain (rustup)" >&2; exit 1; }
	@$(CARGO) fmt --version >/dev/null 2>&1 || { echo "error: rustfmt is missing; install it: rustup component add rustfmt" >&2; exit 1; }
	@$(CARGO) clippy --version >/dev/null 2>&1 || { echo "error: clippy is missing; install it: rustup component add clippy" >&2; exit 1; }

# Prints the export lines: envlines="$(make -s env)" && eval "$envlines"
env:
	@scripts/ensure-env.sh

images:
	@$(ENSURE_ENV); echo "images ready in $$DOCKER_HOST" >&2

registry:
	@scripts/start-registry.sh

stop-registry:
	@scripts/stop-registry.sh

stop-engine:
	@scripts/stop-docker.sh

clean-engine:
	@scripts/stop-docker.sh --clean
