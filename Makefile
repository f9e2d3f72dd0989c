# resellgate — the two commands that matter on a fresh machine: `make demo` and `make test`.
CARGO ?= cargo
export PATH := $(HOME)/.local/bin:$(HOME)/.cargo/bin:$(PATH)

.PHONY: deps build demo test lint bench bench-fleet soak clean

deps:
	@bash .ci/deps.sh

build: deps
	$(CARGO) build --release --locked

## Sandbox + gateway + mappings/demo.toml, a scripted reseller session, then keep serving.
demo: build
	./target/release/resellgate demo

## Unit and integration tests (nextest when installed, cargo test otherwise), with a
## PostgreSQL cluster started by .ci/postgres.sh for the fleet-mode tests (required when CI=true).
test: deps
	@if pg_env="$$(bash .ci/postgres.sh)"; then eval "$$pg_env"; \
	elif [ "$${CI:-}" = true ]; then echo "make test: PostgreSQL is required in CI" >&2; exit 1; \
	else echo "make test: no PostgreSQL; the fleet-mode tests will skip" >&2; fi; \
	if $(CARGO) nextest --version >/dev/null 2>&1; then \
		$(CARGO) nextest run --locked --no-fail-fast; \
	else \
		$(CARGO) test --locked --no-fail-fast; \
	fi

lint:
	$(CARGO) fmt --check
	$(CARGO) clippy --locked --all-targets -- -D warnings
	RUSTDOCFLAGS="-D warnings" $(CARGO) doc --locked --no-deps --lib

## Benchmarks (run on purpose; see bench/README.md).
bench: build
	@export BENCH_SUMMARY="$$(mktemp)"; status=0; \
	bash bench/run.sh && bash bench/rewrite.sh && bash bench/memory.sh && \
	STORE=postgres CONFIG_EXTRA="$$(printf '[auth]\nmax_concurrent_verifications = 1')" bash bench/memory.sh || status=$$?; \
	echo "== issue 13 goals, this run ($$(nproc) cores)"; cat "$$BENCH_SUMMARY"; rm -f "$$BENCH_SUMMARY"; exit $$status

## Fleet mode: durable orders/s and pass-through, sled vs PostgreSQL (see bench/README.md).
bench-fleet: build
	bash bench/fleet.sh

## Soak: 30 minutes (DURATION seconds) of mixed load, RSS watched (see bench/README.md).
soak: build
	bash bench/soak.sh

clean:
	$(CARGO) clean
