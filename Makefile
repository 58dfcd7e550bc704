# The two commands: `make demo` and `make test`. Both set everything up first and reuse
# what is already installed (the main .venv, and the private MyriadX compiler toolchain).
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
OAKPIPE := $(VENV)/bin/oakpipe
STAMP := $(VENV)/.oakpipe-installed
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: setup toolchain test demo bench lint clean

setup: $(STAMP)

$(STAMP): pyproject.toml scripts/bootstrap.sh
	bash scripts/bootstrap.sh $(VENV)
	touch $(STAMP)

toolchain: setup
	$(OAKPIPE) toolchain install

test: setup toolchain
	bash scripts/install_test_deps.sh
	$(VENV)/bin/ruff check oakpipe tests scripts benchmarks
	$(VENV)/bin/mypy
	OAKPIPE_REQUIRE_TOOLCHAIN=1 $(PY) -m pytest -q -p no:cacheprovider

demo: setup toolchain
	mkdir -p demo-out
	$(OAKPIPE) deploy stylizer --style oakpipe/models/styles/hubble_deep_field.jpg \
		--source sample --frames 90 --display none \
		--record demo-out/demo.mp4 --strip demo-out/strip.png --out demo-out/export

lint: setup
	$(VENV)/bin/ruff check oakpipe tests scripts benchmarks
	$(VENV)/bin/mypy

bench: setup toolchain
	$(OAKPIPE) bench

clean:
	rm -rf exports demo-out
