# dmlviz — every target installs what it needs (libtorch from PyPI wheels) first.
SHELL := /bin/bash
CARGO ?= cargo
DMLVIZ := $(CARGO) run --quiet --bin dmlviz --

.PHONY: setup build test demo bench fixtures clean-data

setup: .libtorch/build-version

.libtorch/build-version: scripts/setup-libtorch.sh
	bash scripts/setup-libtorch.sh

build: setup
	$(CARGO) build --bins

# All tests; libtorch threads are limited per test (cargo runs tests in parallel).
test: setup
	$(CARGO) test --no-fail-fast

# The main job on the built-in dataset: the "Animals & Nature" emoji of four vendors.
demo: build
	$(DMLVIZ) data fetch emoji --category "Animals & Nature" --out data/emoji-animals
	$(DMLVIZ) data summary data/emoji-animals

# Loader speed beside a ResNet18 training step (figures in README.md).
bench: build
	$(DMLVIZ) data fetch cards --out data/cards
	$(DMLVIZ) bench loader --data data/cards --size 64 --size 224

# Rebuilds fixtures/ from the registry packages (needs network access to npm and Debian).
fixtures: build
	bash scripts/make-fixtures.sh
