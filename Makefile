# One bootstrap: `.venv` is created once, the project installed into it, and reused while pyproject.toml is unchanged.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.vton-installed

.PHONY: venv demo test bench clean-venv

venv: $(STAMP)

$(STAMP): pyproject.toml scripts/install_openpifpaf.sh
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip
	$(BIN)/python -m pip install -e '.[test]'
	bash scripts/install_openpifpaf.sh $(BIN)/python  # built against the installed torch; skipped when importable
	touch $(STAMP)

demo: venv
	$(BIN)/vton demo

test: venv
	$(BIN)/python -m pytest -n 2 --dist loadgroup

clean-venv:
	rm -rf $(VENV)
