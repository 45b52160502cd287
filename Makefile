# Two commands on a fresh machine: `make run` serves, `make test` tests. Each installs what it
# needs into .venv first; the install is skipped while pyproject.toml is unchanged (the stamp's
# name holds its hash; the client's clients/python/pyproject.toml counts too). Debian packages come from scripts/system_deps.sh (only what is missing).
VENV   := .venv
PY     := $(VENV)/bin/python
HASH   := $(shell sha256sum pyproject.toml clients/python/pyproject.toml scripts/install.sh | sha256sum | cut -c1-16)
STAMP  := $(VENV)/.installed-dev-$(HASH)
BSTAMP := $(VENV)/.installed-bench-$(HASH)
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export ANONYMIZED_TELEMETRY := False

.PHONY: install run test lint bench clean

$(STAMP):
	rm -f $(VENV)/.installed-dev-*
	scripts/install.sh $(VENV) dev
	touch $@

$(BSTAMP): $(STAMP)
	rm -f $(VENV)/.installed-bench-*
	scripts/install.sh $(VENV) dev,bench
	touch $@

install: $(STAMP)

run: $(STAMP)
	scripts/system_deps.sh runtime
	$(VENV)/bin/ragserver serve

test: $(STAMP)
	scripts/system_deps.sh test
	$(PY) -m pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

bench: $(BSTAMP)
	$(PY) bench/run_all.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
