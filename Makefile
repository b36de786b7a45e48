# What CI runs (.ci/run), one command each, in the active virtual environment:
#   make build        pip install . (compiles both extensions)
#   make dev          pip install ".[test,dev]" (the tests' and the lint tools)
#   make dev-tools    the lint tools alone, beside an installed package (CI)
#   make test         the suite on the Cython backend, then on cffi
#   make test-extlib  the suite on cffi over an external client library (ours, as a .so)
#   make test-c       the C tests of native/
#   make san          the C tests under ASan/UBSan, the daemon tests against the sanitized
#                     daemon, and the suite with both extensions built under ASan/UBSan
#   make fuzz         the fuzzers: seeds and regressions, then FUZZ_SECONDS (60) each
#   make lint         ruff, ruff format --check, cython-lint, clang-format, mypy, and
#                     the generated constants' check
#   make format       ruff format and ruff's fixes, clang-format, the constants generated
#   make bench        python -m spread.bench on the embedded daemon (BENCH_ARGS=--quick)
#   make icount       instructions per message under callgrind (bench/instructions.py)
#   make docs         the reference manual (docs/) with Sphinx, warnings as errors, from
#                     the installed package's docstrings (the docs extra)
# `make lint-all` lints the whole tree (see LINT_* below).

PYTHON ?= python
# The lint tools are run from the environment PYTHON belongs to, also when it
# is not activated (cython-lint runs pycodestyle from PATH).
PYBIN := $(shell $(PYTHON) -c 'import os, sys; print(os.path.dirname(sys.executable))')
export PATH := $(PYBIN):$(PATH)
CLANG_FORMAT ?= clang-format
PYTEST ?= $(PYTHON) -m pytest -p no:cacheprovider

# ---- native/: every path of the C tree used here --------------------------
NATIVE ?= native
NATIVE_BUILD ?= $(NATIVE)/build
NATIVE_LIBRARY ?= $(NATIVE_BUILD)/plain/libspreadclient.so
NATIVE_SAN_DAEMON ?= $(NATIVE_BUILD)/san/spread-daemon
NATIVE_SOURCES = $(shell find $(NATIVE) -name '*.[ch]' -not -path '$(NATIVE_BUILD)/*' | sort)
FUZZ_SECONDS ?= 60

# ---- what `make lint` and `make format` cover -----------------------------
# For now the files that are already formatted; the rest of the tree is
# formatted in one change, after which these become ALL_PY, ALL_CYTHON and
# NATIVE_SOURCES (`make lint-all` runs them over everything today).
ALL_PY = src tests bench tools docs
ALL_CYTHON = $(wildcard src/spread/*.pyx src/spread/*.pxi src/spread/*.pxd)
ALL_MYPY =
LINT_PY ?= setup.py $(ALL_PY)
LINT_CYTHON ?= $(ALL_CYTHON)
LINT_C ?= $(NATIVE_SOURCES)
# mypy: the files named (ALL_MYPY, empty: those of [tool.mypy] in pyproject.toml);
# --follow-imports=silent keeps the findings of the modules they import out.
LINT_MYPY ?= $(ALL_MYPY)
MYPY_FLAGS ?= --follow-imports=silent

.PHONY: build dev dev-tools test test-cython test-cffi test-extlib test-c san san-c san-daemon san-python \
	fuzz lint lint-all format constants bench icount docs

# build/ is removed first: setuptools reuses its objects by timestamp and has
# installed stale native code into the cffi module after a C change.
build:
	rm -rf build
	$(PYTHON) -m pip install .

dev:
	$(PYTHON) -m pip install ".[test,dev]"

# The dev extra's tools alone, for an installed package (no second build).
dev-tools:
	reqs="$$($(PYTHON) tools/extra_requirements.py dev)" && \
	    echo "$$reqs" | xargs -d '\n' $(PYTHON) -m pip install --quiet

test: test-cython test-cffi

test-cython:
	SPREAD_BACKEND=cython $(PYTEST)

test-cffi:
	SPREAD_BACKEND=cffi $(PYTEST)

test-extlib:
	$(MAKE) -C $(NATIVE) all
	SPREAD_BACKEND=cffi SPREAD_LIBRARY="$(abspath $(NATIVE_LIBRARY))" $(PYTEST)

test-c:
	$(MAKE) -C $(NATIVE) check

# ---- sanitizers, as .ci/run runs them -------------------------------------
# The sanitized suite gets a virtual environment of its own (SAN_VENV) with
# SPREAD_SANITIZE=1 (setup.py). Python is not instrumented, so gcc's ASan
# runtime is preloaded; PYTHONMALLOC=malloc gives every object redzones.
# Reports go to files (pytest captures stderr): any report fails, and is shown.
SAN_VENV ?= build/venv-san
SAN_LOGS ?= build/san-logs
ASAN_OPTIONS_PY = detect_leaks=0:allocator_may_return_null=1:abort_on_error=1
UBSAN_OPTIONS_PY = print_stacktrace=1:halt_on_error=1

san: san-c san-daemon san-python

san-c:
	$(MAKE) -C $(NATIVE) check SAN=1

san-daemon: san-c
	SPREAD_DAEMON_COMMAND="$(abspath $(NATIVE_SAN_DAEMON))" $(PYTEST) -q \
	    tests/test_daemon_vectors.py tests/test_daemon.py tests/test_fuzz.py tests/test_daemon_controls.py

san-python:
	python3 -m venv $(SAN_VENV)
	$(SAN_VENV)/bin/python -m pip install --quiet --upgrade pip
	SPREAD_SANITIZE=1 $(SAN_VENV)/bin/python -m pip install --quiet --no-cache-dir ".[test]"
	@runtime="$$(gcc -print-file-name=libasan.so)"; \
	test -f "$$runtime" || { echo "no ASan runtime at '$$runtime'" >&2; exit 1; }; \
	for backend in cython cffi; do \
	    echo "-- $$backend backend"; \
	    rm -rf $(SAN_LOGS); mkdir -p $(SAN_LOGS); logs="$$(cd $(SAN_LOGS) && pwd)"; status=0; \
	    SPREAD_BACKEND=$$backend PYTHONMALLOC=malloc LD_PRELOAD="$$runtime" \
	        ASAN_OPTIONS="$(ASAN_OPTIONS_PY):log_path=$$logs/asan" \
	        UBSAN_OPTIONS="$(UBSAN_OPTIONS_PY):log_path=$$logs/ubsan" \
	        $(SAN_VENV)/bin/python -m pytest -q -p no:cacheprovider || status=$$?; \
	    if [ -n "$$(ls -A $$logs)" ]; then \
	        cat $$logs/* >&2; echo "sanitizer reports on the $$backend backend (above)" >&2; exit 1; \
	    fi; \
	    [ $$status -eq 0 ] || exit $$status; \
	done

fuzz:
	$(MAKE) -C $(NATIVE) --no-print-directory fuzz-regress
	$(MAKE) -C $(NATIVE) --no-print-directory fuzz-run FUZZ_SECONDS=$(FUZZ_SECONDS)

# ---- style -----------------------------------------------------------------
lint:
	$(PYTHON) -m ruff check $(LINT_PY)
	$(PYTHON) -m ruff format --check $(LINT_PY)
	$(if $(strip $(LINT_CYTHON)),cython-lint $(LINT_CYTHON))
	$(if $(strip $(LINT_C)),$(CLANG_FORMAT) --dry-run -Werror $(LINT_C))
	$(PYTHON) -m mypy $(MYPY_FLAGS) $(LINT_MYPY)
	$(PYTHON) tools/gen_constants.py --check

# Everything, as `make lint` will cover once the whole tree is formatted: a
# report (each tool runs, whatever the one before it found).
lint-all:
	-$(PYTHON) -m ruff check $(ALL_PY)
	-$(PYTHON) -m ruff format --check $(ALL_PY)
	-cython-lint $(ALL_CYTHON)
	-$(CLANG_FORMAT) --dry-run -Werror $(NATIVE_SOURCES)
	-$(PYTHON) -m mypy $(ALL_MYPY)
	-$(PYTHON) tools/gen_constants.py --check

format: constants
	$(PYTHON) -m ruff check --fix $(LINT_PY)
	$(PYTHON) -m ruff format $(LINT_PY)
	$(if $(strip $(LINT_C)),$(CLANG_FORMAT) -i $(LINT_C))

constants:
	$(PYTHON) tools/gen_constants.py

# ---- benchmarks ------------------------------------------------------------
BENCH_ARGS ?=
ICOUNT_ARGS ?=
bench:
	$(PYTHON) -m spread.bench $(BENCH_ARGS)

icount:
	$(PYTHON) bench/instructions.py $(ICOUNT_ARGS)

# ---- the reference manual --------------------------------------------------
# -E: every page read again, so that -W sees every warning, not only new ones.
DOCS_OUT ?= build/docs
docs:
	$(PYTHON) -m sphinx -E -W --keep-going -q -b html docs $(DOCS_OUT)
