# Infra Guardians. The two commands a user needs: `make run` and `make test`.
SHELL := /bin/bash
PY := .venv/bin/python
STACK := stack/stack.sh
export PYTHONPATH := $(CURDIR)

.PHONY: help venv lint typecheck test test-unit test-integration stack-up stack-down stack-status \
        run demo bench schemas schemas-check clean native native-tables

help:
	@echo "make run         the whole pipeline on the local stack, with the demo"
	@echo "make test        lint, type-check, and every test against the real stack"
	@echo "make stack-up    start Kafka, PostgreSQL, Prometheus, nginx (idempotent);  make stack-down to stop"
	@echo "make bench       benchmarks (long); figures go to BENCHMARKS.md"
	@echo "make schemas     regenerate the JSON Schema / AsyncAPI export"

# The project venv, installed from the pinned lock file; re-run only when the lock changes.
.venv/.installed: requirements.lock pyproject.toml
	@test -x $(PY) || python3 -m venv .venv
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.lock
	@# compat: a .pth line with the checkout's path. setuptools' default finder hook imports
	@# inspect and pathlib at every interpreter start (~25 ms of each `guardians` command).
	$(PY) -m pip install -q --no-deps -e . --config-settings editable_mode=compat \
	  || $(PY) -m pip install -q --no-deps -e .
	@touch $@

# Bytecode for the project's modules: this machine sets PYTHONDONTWRITEBYTECODE, so without
# it every `guardians` command compiles its modules again (~0.1 s of a `guardians lint`).
# compileall only rewrites what changed; a stale .pyc is never used (Python checks mtimes).
venv: .venv/.installed native
	@$(PY) -m compileall -q -j 0 schemas services cli demo >/dev/null

# The native SQL analysis (native/, Rust, a pyo3 module): `guardians lint` and the migration
# guardian use it when it is built; the Python rules are the reference it is tested against.
# Without cargo (rustup.rs) the build is skipped and the Python analysis is used; `make test`
# needs it (tests/unit/migration compares the two).
# rustup puts cargo in ~/.cargo/bin, which a non-login shell's PATH may lack.
CARGO := $(shell command -v cargo || echo $(HOME)/.cargo/bin/cargo)
NATIVE_SO = services/migration/domain/_native$(shell $(PY) -c "import sysconfig; print(sysconfig.get_config_var('EXT_SUFFIX'))")
native: .venv/.installed
	@if ! [ -x "$(CARGO)" ]; then \
	  echo "native: no cargo (https://rustup.rs): the migration guardian's Python analysis is used"; \
	else \
	  cd native && PYO3_PYTHON=$(abspath $(PY)) $(CARGO) build --release --locked --quiet && cd .. \
	  && { cmp -s native/target/release/lib_native.so $(NATIVE_SO) \
	       || cp native/target/release/lib_native.so $(NATIVE_SO); }; \
	fi

# The native analysis' generated tables (Unicode classes as Python has them, the rule catalog);
# tests/unit/migration/test_native_tables.py fails when they are stale.
native-tables: .venv/.installed
	$(PY) native/generate.py

lint: venv
	$(PY) -m ruff check .
	cd native && $(CARGO) fmt --check && $(CARGO) clippy --locked --quiet -- -D warnings
	$(PY) -m mypy schemas services cli demo bench tests native

stack-up: venv
	$(STACK) up

stack-down:
	$(STACK) down

stack-status:
	$(STACK) status

schemas: venv
	$(PY) -m schemas.export
	$(PY) -c "from services.runtime.config import write_schema; print('wrote', write_schema())"

test: venv lint stack-up
	cd native && $(CARGO) test --locked --quiet
	stack/browser.sh >/dev/null
	source .cache/stack.env && $(PY) -m pytest -q -p no:cacheprovider tests

test-unit: venv
	$(PY) -m pytest -q tests/unit

run: venv stack-up
	source .cache/stack.env && $(PY) -m services.launcher

demo: venv stack-up
	source .cache/stack.env && $(PY) -m services.launcher --demo

# Every benchmark (long: the backup one writes and restores 1.2 GB); each prints its figures
# against a baseline measured in the same run, and BENCHMARKS.md records them with these
# commands.
bench: venv stack-up
	$(PY) bench/lint_vs_squawk.py --repeat 5
	source .cache/stack.env && $(PY) bench/relay_chain.py
	source .cache/stack.env && $(PY) bench/rollback_time.py
	source .cache/stack.env && $(PY) bench/health_checks.py
	source .cache/stack.env && $(PY) bench/corpus_rollback.py
	source .cache/stack.env && $(PY) bench/replay.py
	source .cache/stack.env && $(PY) bench/backup_restore.py

clean: stack-down
	rm -rf .cache .venv
