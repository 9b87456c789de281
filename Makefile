# Entry points (README): `make test`, `make test-fast`, `make demo` and `make webui`. Each bootstraps .venv/ when it is missing.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# CPU wheels that pip takes from local disk on the project machines; GPU users see README "Installation".
TORCH_PINS ?= torch==2.14.1 torchvision==0.29.1
PYTEST_ARGS ?=

.PHONY: venv browser test test-fast demo webui clean-venv

venv: $(STAMP)

$(STAMP): setup.cfg setup.py pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet $(TORCH_PINS)
	$(PY) -m pip install --quiet -e '.[lite,tests]'
	touch $(STAMP)

# The web app test drives Debian's headless chromium; CI runs as root on a clean Debian machine.
browser:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || { \
		apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium chromium-driver; }

# pytest exits 5 when it collects nothing: a run that tests nothing must not look green.
define run_pytest
@$(PY) -m pytest $(1) $(PYTEST_ARGS); status=$$?; \
	if [ $$status -eq 5 ]; then echo "error: pytest collected no tests" >&2; fi; \
	exit $$status
endef

test: $(STAMP) browser
	$(call run_pytest,)

# The quick tier (docs/testing.md): no end-to-end subprocess runs, training, pip installs,
# browser or GPU, so no chromium either.
test-fast: $(STAMP)
	$(call run_pytest,-m "not slow and not browser and not cuda")

# The sample photo is public domain (NASA; shipped with scikit-image as astronaut.png).
# Weights: CHECKPOINT (a file or URL) if given, else the released weights of CONFIG
# (configs/metafile.yaml; WEIGHTS_URL replaces their URL), downloaded once into torch hub's cache.
CHECKPOINT ?=
WEIGHTS_URL ?=
CONFIG ?= configs/catseg_vitb.py
INPUT ?= demo/astronaut.jpg
VOCAB ?= person, spacesuit, american flag, rocket, wall
DEMO_OUT ?= demo_out

demo: $(STAMP)
	$(if $(WEIGHTS_URL),CATSEG_WEIGHTS_URL="$(WEIGHTS_URL)") $(PY) tools/demo.py $(INPUT) \
		--vocab "$(VOCAB)" --config $(CONFIG) $(if $(CHECKPOINT),--checkpoint "$(CHECKPOINT)") \
		--out $(DEMO_OUT)

# The web app (tools/webui.py) on http://127.0.0.1:$(PORT); weights as for demo.
PORT ?= 7860

webui: $(STAMP)
	$(PY) -c 'import gradio' 2>/dev/null || $(PY) -m pip install --quiet -e '.[lite,webui]'
	$(if $(WEIGHTS_URL),CATSEG_WEIGHTS_URL="$(WEIGHTS_URL)") $(PY) tools/webui.py $(CONFIG) \
		$(if $(CHECKPOINT),"$(CHECKPOINT)") --port $(PORT)

clean-venv:
	rm -rf $(VENV)
