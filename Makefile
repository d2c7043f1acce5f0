# Two commands set up a fresh machine: `make demo` (train and inspect the CPU presets on
# the embedded data) and `make test` (the test suite). Both create .venv on first use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_OUT ?= demo_out

.PHONY: install demo test bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	# torch first, pinned to the release pyproject.toml names (CPU wheel on CPU-only indexes)
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/landscape demo --out $(DEMO_OUT)

test: $(STAMP)
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/python benchmarks/run.py
	$(BIN)/python benchmarks/map_cost.py
	$(BIN)/python benchmarks/validate_map.py
	$(BIN)/python benchmarks/validate_diagnosis.py
	$(BIN)/python benchmarks/map_file.py

clean:
	rm -rf $(VENV) $(DEMO_OUT) .pytest_cache .benchmarks
