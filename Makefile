# The two commands: `make run` and `make test`. Both create .venv themselves.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test lint bench eval-drafts migrate i18n clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml sdk/python/pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test,ai]'
	# The SDK (sdk/python) in the same venv; --no-deps: its one dependency, stalela-core, is this project.
	$(BIN)/python -m pip install --quiet --no-deps -e sdk/python
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/stalela serve

# Two processes (the machine's two cores), a test module each at a time: every process has its own
# databases (tests/conftest.py names them uniquely). PYTEST_WORKERS=0 runs in one process.
PYTEST_WORKERS ?= 2
test: $(STAMP)
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

# The import-linter contracts of pyproject.toml alone (`make test` runs them too: tests/architecture).
lint: $(STAMP)
	$(BIN)/lint-imports

bench: $(STAMP)
	$(BIN)/python bench/run.py

# The rule parser of invoice drafts on its hand-written evaluation set (docs/assistants.md): accuracy
# of accepted drafts (Wilson lower bound), refusal recall, calibration error, coverage.
eval-drafts: $(STAMP)
	$(BIN)/python -m stalela.assistants.parser.evaluate

# Append every string the templates and gettext calls use but a language lacks to that language's
# catalog for AREA (src/stalela/i18n/locales/<lang>/LC_MESSAGES/<AREA>.po), ready to translate.
AREA ?= common
i18n: $(STAMP)
	$(BIN)/python -m stalela.i18n.catalogs add $(AREA)
	$(if $(filter errors,$(AREA)),$(BIN)/python -m stalela.i18n.problem_codes add)
	$(BIN)/python -m stalela.i18n.catalogs check
	$(BIN)/python -m stalela.i18n.problem_codes check

migrate: $(STAMP)
	$(BIN)/stalela migrate

clean:
	rm -rf $(VENV) var .pytest_cache .hypothesis .import_linter_cache .grimp_cache
