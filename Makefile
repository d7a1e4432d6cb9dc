# Two commands do everything on a fresh machine (Python 3.11, pip, make):
#   make run    install into .venv, then compute the default ESS table and threshold heatmap
#   make test   install into .venv (with the test and distributed extras), then run the tests
#   make test-fast  the same without the long statistical tests (those marked `slow`)
#   make bench  the benchmark suite (several minutes): benchmarks/results/bench.md and PNGs
#               (make bench-quick: under a minute, benchmarks/results/bench-quick.*)
#   make bench-service  load on `ess serve`: benchmarks/results/service_load.md
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
OUT    ?= ess-results

.PHONY: run test test-fast lint bench bench-quick bench-service install clean

# Editable install in setuptools' compat mode: a .pth file puts this checkout on sys.path,
# so `import ess` finds the package even when Python starts in the folder that contains
# the clone (itself a folder named `ess`, which the default editable mode loses against,
# as a namespace package: tests/test_install.py). The Makefile is a prerequisite so that
# an existing .venv is reinstalled when this recipe changes.
$(BIN)/ess: pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test,distributed]" \
		--config-settings editable_mode=compat
	touch $(BIN)/ess

install: $(BIN)/ess

run: install
	$(BIN)/ess table --out $(OUT)/ess_table.csv
	$(BIN)/ess heatmap --out $(OUT)/threshold_heatmap.png

test: install
	$(BIN)/python -m pytest -q

test-fast: install
	$(BIN)/python -m pytest -q -m "not slow"

bench: install
	$(BIN)/ess bench

bench-quick: install
	$(BIN)/ess bench --quick

bench-service: install
	$(BIN)/python -m benchmarks.service_load

lint: install
	$(BIN)/ruff check ess tests benchmarks notebooks

clean:
	rm -rf $(VENV) $(OUT) .pytest_cache
