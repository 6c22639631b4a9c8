PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test
# extras the test suite exercises: Spark in local mode (Java 17) and the hnswlib ANN index
TEST_EXTRAS := dev,spark,ann

.PHONY: demo test lint bench clean

$(STAMP): pyproject.toml
	test -d $(VENV) || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e ".[dev]"
	touch $(STAMP)

$(TEST_STAMP): $(STAMP)
	$(BIN)/pip install -q -e ".[$(TEST_EXTRAS)]"
	touch $(TEST_STAMP)

demo: $(STAMP)
	$(BIN)/feedwise demo --db feedwise.duckdb

test: $(TEST_STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks

clean:
	rm -rf $(VENV) feedwise.duckdb feedwise.models .pytest_cache models
