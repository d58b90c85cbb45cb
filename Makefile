# Two commands on a fresh machine: `make demo` (set up + run the main job) and `make test`.
PYTHON ?= python3
VENV ?= .venv
# The CPU wheel found locally; a plain `torch` requirement would pull a CUDA build. Override to taste.
TORCH_SPEC ?= torch==2.13.0
EXTRAS ?= all,dev
BIN := $(VENV)/bin
# the slowest tests are listed after the run: the suite must stay under 30 min on a fresh clone
PYTEST_ARGS ?= --durations=25

.PHONY: install demo test clean cpp-deps

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

# Debian packages for the C/C++ embedding examples and their tests (tests/embed): installed only when
# missing; without root or apt it says so and goes on (those tests then skip with the reason).
CPP_DEPS ?= cmake g++ nlohmann-json3-dev libcjson-dev

cpp-deps:
	@missing=""; \
	if ! command -v dpkg >/dev/null 2>&1 || ! command -v apt-get >/dev/null 2>&1; then \
		echo "cpp-deps: no dpkg/apt-get here; install $(CPP_DEPS) yourself to build the C/C++ examples"; exit 0; fi; \
	for p in $(CPP_DEPS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" != 0 ]; then \
		echo "cpp-deps: not root; skipping: sudo apt-get install -y --no-install-recommends$$missing"; exit 0; fi; \
	echo "cpp-deps: installing$$missing"; \
	export DEBIAN_FRONTEND=noninteractive; \
	apt-get install -y -qq --no-install-recommends $$missing >/dev/null 2>&1 || \
	{ apt-get update -qq && apt-get install -y -qq --no-install-recommends $$missing >/dev/null; } || \
	echo "cpp-deps: apt-get install$$missing failed; the C/C++ tests will skip"

test: install cpp-deps
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

clean:
	rm -rf bundles build .pytest_cache
