# One command sets everything up, one runs the tests. .ci/run runs exactly these.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DATA_ROOT ?= ../shared/data

PORT ?= 8000

.PHONY: setup browser test lint format bench bench-web demo eval clean

setup:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip
	$(BIN)/pip install torch torchvision
	$(BIN)/pip install --config-settings editable_mode=compat -e ".[dev,browser,scale,onnx]"
	$(MAKE) browser

# Debian's Chromium for the browser test (never `playwright install`: it downloads a browser).
browser:
	@if command -v chromium >/dev/null 2>&1; then echo "chromium: $$(command -v chromium)"; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) \
		|| echo "could not install chromium: the browser test will be skipped"; \
	else echo "chromium is not installed and apt-get needs root: the browser test will be skipped"; fi

test:
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -q

lint:
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format:
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench:
	$(BIN)/python benchmarks/bench_pipeline.py

bench-web:
	$(BIN)/python benchmarks/bench_web.py --catalog catalogs/demo/ikea-effnet-lite0/catalog --directions catalogs/demo/ikea-effnet-lite0/directions

# build the IKEA demo catalog once (cached in catalogs/demo/), then serve http://127.0.0.1:$(PORT)/
demo:
	$(BIN)/shopthelook demo --data-root $(DATA_ROOT) --port $(PORT)

eval:
	$(BIN)/shopthelook catalog build --dataset ikea --out catalogs/ikea-effnet-lite0
	$(BIN)/shopthelook eval looks --dataset ikea --catalog catalogs/ikea-effnet-lite0

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache *.egg-info
