# One command sets everything up, one runs the tests. .ci/run runs exactly these.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DATA_ROOT ?= ../shared/data

.PHONY: setup test lint format bench demo eval clean

setup:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip
	$(BIN)/pip install torch torchvision
	$(BIN)/pip install --config-settings editable_mode=compat -e ".[dev]"

test:
	$(BIN)/python -m pytest -q

lint:
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format:
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench:
	$(BIN)/python benchmarks/bench_pipeline.py

eval:
	$(BIN)/shopthelook eval looks --dataset ikea --catalog catalogs/ikea-yolo

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache *.egg-info
