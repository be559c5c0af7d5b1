# The two commands: `make demo` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test fuzz-api lint typecheck bench docs schema clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade -c constraints.txt pip
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[all,dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python examples/demo/run_demo.py

test: $(STAMP)
	$(BIN)/ruff check src tests bench examples
	$(BIN)/ruff format --check src tests bench examples
	$(BIN)/mypy
	$(BIN)/python -m dovetail.docgen --check
	$(BIN)/python -m pytest -q -p no:cacheprovider

# schemathesis against `dovetail run` of examples/api: >= 10,000 requests, no 5xx, no exit,
# no 2xx without the right API key (src/dovetail/testing/api_fuzz.py)
fuzz-api: $(STAMP)
	$(BIN)/python -m dovetail.testing.api_fuzz examples/api --requests 10000

lint: $(STAMP)
	$(BIN)/ruff check src tests bench examples
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python bench/engine_overhead.py
	$(BIN)/python bench/batch_pipeline.py
	$(BIN)/python bench/reconcile.py
	$(BIN)/python bench/slow_partner.py
	$(BIN)/python bench/webhook.py

docs: $(STAMP)
	$(BIN)/python -m dovetail.docgen

clean:
	rm -rf $(VENV) .demo .pytest_cache .mypy_cache .ruff_cache
