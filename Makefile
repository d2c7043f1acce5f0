# Two commands set up a fresh machine: `make demo` (train and inspect the CPU presets on
# the embedded data) and `make test` (the test suite). Both create .venv on first use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_OUT ?= demo_out

.PHONY: install demo test test-fast bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	# torch first, pinned: a bare "torch" pulls a multi-GB CUDA build onto CPU machines, while
	# torch==2.13.0 resolves to a CPU wheel here; pyproject.toml allows a range (>=2.11,<2.15)
	# that this release satisfies, so the next line installs no other torch.
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/landscape demo --out $(DEMO_OUT)

# everything (CI runs this), one worker per CPU core (pytest-xdist); an idle worker takes
# tests from a busy one's queue (worksteal), so the longest file does not set the time
test: $(STAMP)
	$(BIN)/python -m pytest -q -n auto --dist worksteal

# without the end-to-end runs that train or map (marked slow)
test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -n auto --dist worksteal -m "not slow"

bench: $(STAMP)
	$(BIN)/python benchmarks/run.py
	$(BIN)/python benchmarks/map_cost.py
	$(BIN)/python benchmarks/validate_map.py
	$(BIN)/python benchmarks/validate_diagnosis.py
	$(BIN)/python benchmarks/map_file.py
	$(BIN)/python benchmarks/kill_resume.py
	$(BIN)/python benchmarks/ad_step.py --compile
	$(BIN)/python benchmarks/ad_window.py
	$(BIN)/python benchmarks/string_step.py --compile
	$(BIN)/python benchmarks/bad_inputs.py
	$(BIN)/python benchmarks/map_scale.py
	$(BIN)/python benchmarks/quench.py

clean:
	rm -rf $(VENV) $(DEMO_OUT) .pytest_cache .benchmarks
