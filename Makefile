# The README's two commands: `make test` and `make demo`. Both create .venv when missing.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml constraints.txt | cksum | cut -d' ' -f1)
# The demo trains on CamVid when ../shared is there; point DEMO_DATA at any dataset YAML instead.
DEMO_DATA ?= ../shared/datasets/camvid/dataset.yaml
DEMO_MINUTES ?= 4

.PHONY: install test demo bench clean

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e '.[test]'
	rm -f $(VENV)/.installed-* && touch $@

test: install
	$(PY) -m pytest -q

demo: install
	$(PY) -m pixelwise.demo --data $(DEMO_DATA) --minutes $(DEMO_MINUTES)

bench: install
	$(PY) -m pip install -q -c constraints.txt -e '.[bench]'
	$(PY) benchmarks/camvid.py

clean:
	rm -rf runs .pytest_cache
