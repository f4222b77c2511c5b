# Two entry points: `make demo` and `make test`. Both create .venv on first use, install
# torch==2.13.0 (CPU build) first, then the project with the pinned known-good versions.
# A second run finds the install stamp and starts at once.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.install-stamp
CONSTRAINTS := constraints.txt
PIP := $(PY) -m pip --disable-pip-version-check -q

.PHONY: demo test install clean-venv

install: $(STAMP)

$(PY):
	$(PYTHON) -m venv $(VENV)

$(STAMP): setup.py $(CONSTRAINTS) $(wildcard ops/csrc/*.cpp ops/csrc/*.h) | $(PY)
	$(PIP) install "pip==24.3.1" "setuptools==80.9.0" "wheel==0.45.1"
	$(PIP) install torch==2.13.0
	$(PIP) install --no-build-isolation --use-pep517 -c $(CONSTRAINTS) -e ".[test]"
	touch $(STAMP)

demo: $(STAMP)
	$(PY) demo/run_demo.py

test: $(STAMP)
	OMP_WAIT_POLICY=PASSIVE $(PY) -m pytest tests

clean-venv:
	rm -rf $(VENV)
