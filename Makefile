# The two set-up commands: `make demo` and `make test` (README.md).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test bench docs clean install

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# llama-cpp-python builds from source the first time (~16 min on 2 cores); pip caches the wheel.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[local,test]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/benchsmith run --config examples/demo.yaml
	@$(BIN)/python examples/show_latest.py demo_runs

test: $(STAMP)
	$(BIN)/ruff check src tests benchmarks examples
	$(BIN)/python -m pytest -p no:cacheprovider

bench: $(STAMP)
	$(BIN)/python benchmarks/throughput.py
	$(BIN)/python benchmarks/batch_io.py
	$(BIN)/python benchmarks/bm25_repo.py

clean:
	rm -rf $(VENV) demo_runs runs build src/*.egg-info

docs: $(STAMP)
	$(BIN)/python -m benchsmith.readme_sync README.md
