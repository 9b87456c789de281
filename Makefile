# Two entry points (README): `make test` and `make demo`. Both bootstrap .venv/ when it is missing.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# CPU wheels that pip takes from local disk on the project machines; GPU users see README "Installation".
TORCH_PINS ?= torch==2.14.1 torchvision==0.29.1
PYTEST_ARGS ?=

.PHONY: venv test demo clean-venv

venv: $(STAMP)

$(STAMP): setup.cfg pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet $(TORCH_PINS)
	$(PY) -m pip install --quiet -e '.[lite,tests]'
	touch $(STAMP)

test: $(STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

demo: $(STAMP)
	@echo "make demo will run tools/demo.py (open-vocabulary segmentation of a sample photo);"
	@echo "the demo CLI is not implemented yet (see the open-vocabulary demo issue)."

clean-venv:
	rm -rf $(VENV)
