# The README's two commands: `make demo` (set up, then `nasforge auto` on Fashion-MNIST in 15 minutes) and `make test` (set up, all checks).
# Everything a fresh machine needs is installed here; nothing is expected to be there by hand.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
TORCH  := torch==2.13.0
STAMP  := $(VENV)/.nasforge-installed
FMNIST := /usr/share/datasets/fashion-mnist
DEMO_DB ?= runs/demo.db
DEMO_BUDGET ?= 15m
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: setup data browser demo test lint unit clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	# torch first and pinned: a bare `torch` requirement would pull a multi-GB CUDA build
	$(BIN)/pip install --quiet $(TORCH)
	# the dev tools and Ray (the ray executor's tests start a real local cluster); torch is already pinned above
	$(BIN)/pip install --quiet -e '.[dev,ray]'
	touch $(STAMP)

data:
	@if [ ! -f $(FMNIST)/train-images-idx3-ubyte.gz ] && [ -z "$$NASFORGE_DATA_DIR" ]; then \
		echo "installing Fashion-MNIST from Debian (dataset-fashion-mnist)"; \
		$(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq dataset-fashion-mnist >/dev/null; \
	fi

# headless Chromium renders the HTML report in tests/test_report.py (the test skips without it)
browser:
	@if ! command -v chromium >/dev/null 2>&1; then \
		echo "installing Chromium from Debian (chromium)"; \
		$(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq chromium >/dev/null; \
	fi

setup: $(STAMP) data browser

# the product's real behaviour: data and a time budget in, a searched network against ResNet-20 out
demo: setup
	rm -rf $(DEMO_DB) $(DEMO_DB)-wal $(DEMO_DB)-shm $(addprefix $(basename $(DEMO_DB)),-checkpoints -models -report)
	$(BIN)/nasforge auto fashion_mnist --time-budget $(DEMO_BUDGET) --db $(DEMO_DB) --json $(basename $(DEMO_DB)).json

unit: setup
	$(BIN)/pytest -q

lint: setup
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/mypy

test: setup lint unit

clean:
	rm -rf $(VENV) runs .pytest_cache .mypy_cache .ruff_cache
