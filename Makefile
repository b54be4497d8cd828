# The README's commands. `make test` and `make demo` work on a fresh clone: they create .venv themselves.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TF_VENV ?= .venv-tools
MP_VENV ?= .venv-mediapipe
MEDIAPIPE ?= mediapipe==1.2.3
HA_VENV ?= .venv-ha
# the newest Home Assistant for Python 3.11; it answers HTTP 500 until josepy<2 is installed (hass_nabucasa → acme)
HOMEASSISTANT ?= homeassistant==2024.3.3
PYTEST_ARGS ?=
ONLY ?=

.PHONY: help venv mediapipe-venv ha-venv test lint demo bench fixtures clean

help:
	@echo "make demo      run edged on a synthetic camera with the project's demo model"
	@echo "make test      run the test suite (set EDGED_CONFORMANCE_DATA=../shared/data for the conformance tier)"
	@echo "make lint      ruff + mypy"
	@echo "make bench     throughput benchmarks against the naive loop (needs ../shared)"
	@echo "make fixtures  regenerate tests/fixtures/models (installs tensorflow-cpu in $(TF_VENV));"
	@echo "               ONLY='a.tflite b.tflite' builds just those"
	@echo "make mediapipe-venv  MediaPipe Tasks in $(MP_VENV), the reference peer of the conformance tier and bench"
	@echo "make ha-venv   a real Home Assistant Core in $(HA_VENV) for tests/test_homeassistant_real.py"

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

test: $(STAMP)
	$(BIN)/pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check edged tests tools
	$(BIN)/ruff format --check edged tests tools
	$(BIN)/mypy edged

demo: $(STAMP)
	$(BIN)/python tools/demo.py

bench: $(STAMP) $(MP_VENV)/.installed
	$(BIN)/python tools/bench.py all
	$(BIN)/python tools/bench_mqtt.py
	$(BIN)/python tools/bench_http.py all

$(TF_VENV)/.installed:
	$(PYTHON) -m venv $(TF_VENV)
	$(TF_VENV)/bin/pip install --quiet --upgrade pip
	$(TF_VENV)/bin/pip install --quiet tensorflow-cpu opencv-python-headless
	touch $@

fixtures: $(TF_VENV)/.installed $(STAMP)
	$(TF_VENV)/bin/python tools/make_test_models.py $(foreach name,$(ONLY),--only $(name))

# MediaPipe pulls opencv-contrib-python, which clashes with edged's opencv-python-headless (both are cv2):
# it lives in its own venv and is only ever run as a subprocess (tools/mediapipe_peer.py), never by edged.
$(MP_VENV)/.installed:
	$(PYTHON) -m venv $(MP_VENV)
	$(MP_VENV)/bin/pip install --quiet --upgrade pip
	$(MP_VENV)/bin/pip install --quiet '$(MEDIAPIPE)'
	touch $@

mediapipe-venv: $(MP_VENV)/.installed

# Home Assistant Core in its own venv (its pins would fight edged's): the real-HA test tier runs it as `hass`.
# The integrations' requirements are installed here, pinned by HA's constraints, because the test runs --skip-pip.
$(HA_VENV)/.installed:
	$(PYTHON) -m venv $(HA_VENV)
	$(HA_VENV)/bin/pip install --quiet --upgrade pip
	$(HA_VENV)/bin/pip install --quiet '$(HOMEASSISTANT)' 'josepy<2'
	$(HA_VENV)/bin/python tools/ha_requirements.py > $(HA_VENV)/requirements.txt
	$(HA_VENV)/bin/pip install --quiet -r $(HA_VENV)/requirements.txt \
	    -c $$($(HA_VENV)/bin/python -c 'import homeassistant, pathlib; print(pathlib.Path(homeassistant.__file__).parent / "package_constraints.txt")') 'josepy<2'
	touch $@

ha-venv: $(HA_VENV)/.installed

clean:
	rm -rf $(VENV) $(TF_VENV) $(MP_VENV) $(HA_VENV) .pytest_cache .mypy_cache .ruff_cache
