# failkit — `make demo`, `make test`, `make lab`. Each creates .venv when absent.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DEPS := $(VENV)/.deps-installed
DEV_DEPS := $(VENV)/.dev-deps-installed
PYTEST_WORKERS ?= 2

.PHONY: demo test lab lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

# The demo and JupyterLab need the package only; tests, lint and benchmarks also need the dev
# tools and PySpark (the Spark tests).
$(DEPS): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e .
	touch $(DEPS)

$(DEV_DEPS): $(DEPS)
	$(BIN)/python -m pip install -q -e '.[dev,spark]'
	touch $(DEV_DEPS)

demo: $(DEPS)
	$(BIN)/failkit demo

# 04_real_data needs ../shared/datasets (public datasets kept beside the repo); without them
# it is skipped, and said so.
NOTEBOOKS := $(if $(wildcard ../shared/datasets),notebooks,notebooks --ignore=notebooks/04_real_data.ipynb)

test: $(DEV_DEPS)
	$(BIN)/python -m pytest -q -n $(PYTEST_WORKERS) tests
	@[ -d ../shared/datasets ] || echo "note: ../shared/datasets is absent: skipping notebooks/04_real_data.ipynb"
	$(BIN)/python -m pytest -q --nbval $(NOTEBOOKS) --nbval-sanitize-with notebooks/sanitize.cfg -p no:xdist

lint: $(DEV_DEPS)
	$(BIN)/ruff check failkit tests benchmarks
	$(BIN)/ruff format --check failkit tests benchmarks
	$(BIN)/mypy failkit

lab: $(DEPS)
	$(BIN)/jupyter lab notebooks

bench: $(DEV_DEPS)
	for b in benchmarks/*.py; do $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) data/demo.duckdb .pytest_cache .ruff_cache .mypy_cache
