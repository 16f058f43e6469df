# One bootstrap: `.venv` is created once, the project installed into it, and reused while pyproject.toml is unchanged.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.vton-installed

.PHONY: venv demo test lint clean-venv browser

venv: $(STAMP)

$(STAMP): pyproject.toml scripts/install_openpifpaf.sh
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip
	$(BIN)/python -m pip install -e '.[test]'
	bash scripts/install_openpifpaf.sh $(BIN)/python  # built against the installed torch; skipped when importable
	touch $(STAMP)

demo: venv
	$(BIN)/vton demo

test: venv browser lint
	$(BIN)/python -m pytest -n 2 --dist loadgroup

# ruff (style, imports, bugs) and import-linter (the one-way import rule in pyproject.toml).
lint: venv
	$(BIN)/ruff check .
	$(BIN)/lint-imports

# Headless Chromium + chromedriver for the study page's browser test: installed with apt-get when missing and we are
# root; otherwise the test skips and says why.
browser:
	@if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then \
	  echo "browser: $$(command -v chromium) and $$(command -v chromedriver)"; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium chromium-driver; \
	else \
	  echo "browser: no chromium/chromedriver and cannot apt-get install them (not root); the browser test will skip"; \
	fi

clean-venv:
	rm -rf $(VENV)
