# Two commands on a fresh machine: `make demo` (set up + run the main job) and `make test`.
PYTHON ?= python3
VENV ?= .venv
# The CPU wheel found locally; a plain `torch` requirement would pull a CUDA build. Override to taste.
TORCH_SPEC ?= torch==2.13.0
EXTRAS ?= all,dev
BIN := $(VENV)/bin

.PHONY: install demo test clean

$(BIN)/edgekit: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q "$(TORCH_SPEC)"
	# pin torch for every later install so no dependency can upgrade it
	echo "$(TORCH_SPEC)" > $(VENV)/constraints.txt
	PIP_CONSTRAINT=$(VENV)/constraints.txt $(BIN)/pip install -q -e ".[$(EXTRAS)]"
	touch $@

install: $(BIN)/edgekit

demo: install
	$(BIN)/edgekit env
	$(BIN)/edgekit export zoo:toy --target onnx --target openvino --target tensorrt --out bundles/demo --force
	$(BIN)/edgekit inspect bundles/demo
	$(BIN)/edgekit bench bundles/demo --iters 50 --feed threshold=2 --feed num_steps=8

test: install
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

clean:
	rm -rf bundles build .pytest_cache
