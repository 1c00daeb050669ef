# make test: set up .venv from scratch and run the tests; make demo: train the quality recipe offline and score it.
VENV  ?= .venv
PY    := $(VENV)/bin/python
# The torch build to install first (these lie on this project's machines); set TORCH= to let pip choose.
TORCH ?= torch==2.14.1 torchvision==0.29.1
DEMO_STEPS ?= 2000
DEMO_EVAL_N ?= 10000
DEMO_DIR   ?= outputs/demo/$(shell date +%Y%m%d-%H%M%S)

COMPARE_DIR   ?= outputs/compare
COMPARE_SEEDS ?= 0,1,2
RECIPE_DIR    ?= outputs/recipe/$(shell date +%Y%m%d-%H%M%S)

.PHONY: install test test-all demo compare study study-augment recipe bench folder-scores docs-tables gpu-check \
        speed-quality clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check $(TORCH)
	$(PY) -m pip install -q --disable-pip-version-check -e '.[dev]'
	touch $@

test: install
	$(VENV)/bin/pytest -m "not slow"

test-all: install
	$(VENV)/bin/pytest

# The quality recipe for DEMO_STEPS steps, then its inception score (the domain classifier trains once, ~40 s), a grid,
# and an animation of the fixed-noise grids every 100 steps.
demo: install
	$(VENV)/bin/gan-train +experiment=recipe trainer.steps=$(DEMO_STEPS) trainer.sample_every=100 hydra.run.dir=$(DEMO_DIR)
	$(VENV)/bin/gan-eval ckpt=$(DEMO_DIR) n=$(DEMO_EVAL_N)
	$(VENV)/bin/gan-sample ckpt=$(DEMO_DIR) n=100 nrow=10 seed=0 out=$(DEMO_DIR)/generated
	$(VENV)/bin/gan-sample ckpt=$(DEMO_DIR) mode=progress
	@echo "demo: 100 samples in $(DEMO_DIR)/generated/grid.png; G learning, step by step, in"
	@echo "  $(DEMO_DIR)/generated/progress/progress.gif. From this folder:"
	@echo "  watch the training:  $(VENV)/bin/tensorboard --logdir $(DEMO_DIR)/tb"
	@echo "  sample more:         $(VENV)/bin/gan-sample ckpt=$(DEMO_DIR) n=64 seed=1"
	@echo "  evaluate again:      $(VENV)/bin/gan-eval ckpt=$(DEMO_DIR) n=2000 seed=1"
	@echo "  train your own:      $(VENV)/bin/gan-train --help"
	@echo "  (after 'source $(VENV)/bin/activate' the commands work without $(VENV)/bin/)"

# Saturating vs non-saturating G loss, 3 seeds each, on the offline MNIST subset and on ring8: a table and plots.
compare: install
	$(VENV)/bin/gan-train -m loss=saturating,nonsaturating seed=$(COMPARE_SEEDS) trainer.steps=1000 \
	  trainer.log_every=10 trainer.eval_every=250 eval.n=2000 trainer.ckpt_every=0 hydra.sweep.dir=$(COMPARE_DIR)/mnist5k
	$(VENV)/bin/gan-train -m +experiment=ring8 loss=saturating,nonsaturating seed=$(COMPARE_SEEDS) \
	  trainer.log_every=10 hydra.sweep.dir=$(COMPARE_DIR)/ring8
	$(PY) benchmarks/compare.py $(COMPARE_DIR) --out $(COMPARE_DIR)/report

# The loss family (saturating, non-saturating, least squares, hinge, WGAN-GP), 3 seeds each, equal G updates and
# each loss's standard k (5 for WGAN-GP, else 1), on the offline MNIST subset and on ring8: a table and plots.
STUDY_DIR    ?= outputs/study
STUDY_SEEDS  ?= 0,1,2
STUDY_LOSSES ?= saturating,nonsaturating,lsgan,hinge
study: install
	$(VENV)/bin/gan-train -m +experiment=study loss=$(STUDY_LOSSES) seed=$(STUDY_SEEDS) hydra.sweep.dir=$(STUDY_DIR)/mnist5k
	$(VENV)/bin/gan-train -m +experiment=study loss=wgan_gp trainer.d_steps=5 seed=$(STUDY_SEEDS) \
	  hydra.sweep.dir=$(STUDY_DIR)/mnist5k
	$(VENV)/bin/gan-train -m +experiment=ring8 trainer.log_every=10 loss=$(STUDY_LOSSES) seed=$(STUDY_SEEDS) \
	  hydra.sweep.dir=$(STUDY_DIR)/ring8
	$(VENV)/bin/gan-train -m +experiment=ring8 trainer.log_every=10 loss=wgan_gp trainer.d_steps=5 seed=$(STUDY_SEEDS) \
	  hydra.sweep.dir=$(STUDY_DIR)/ring8
	$(PY) benchmarks/compare.py $(STUDY_DIR) --out $(STUDY_DIR)/report

# Augmentation on little data: the recipe's nets on 500 and on all 4,500 mnist5k digits, x {none, diffaugment, ada}
# x 3 seeds, 1,000 G steps each (+experiment=study_augment): a table and plots of FD over steps and of ADA's p.
STUDY_AUGMENT_DIR   ?= outputs/study-augment
STUDY_AUGMENT_SEEDS ?= 0,1,2
study-augment: install
	$(VENV)/bin/gan-train -m +experiment=study_augment augment=none,diffaugment,ada data.subset=500 \
	  seed=$(STUDY_AUGMENT_SEEDS) hydra.sweep.dir=$(STUDY_AUGMENT_DIR)/mnist5k-500
	$(VENV)/bin/gan-train -m +experiment=study_augment augment=none,diffaugment,ada seed=$(STUDY_AUGMENT_SEEDS) \
	  hydra.sweep.dir=$(STUDY_AUGMENT_DIR)/mnist5k-4500
	$(PY) benchmarks/compare.py $(STUDY_AUGMENT_DIR) --by augment.name --out $(STUDY_AUGMENT_DIR)/report

# The sample-quality recipe in full (docs/quality.md), then gan-eval on 10,000 samples and a 10x10 grid.
recipe: install
	$(VENV)/bin/gan-train +experiment=recipe hydra.run.dir=$(RECIPE_DIR)
	$(VENV)/bin/gan-eval ckpt=$(RECIPE_DIR)
	$(VENV)/bin/gan-sample ckpt=$(RECIPE_DIR) n=100 nrow=10 out=$(RECIPE_DIR)/generated

# Speed: gan-cli's trainer against a tutorial-style loop, then 1 vs 2 torchrun processes, then image folders: the
# same digits from a folder and in memory, and preparing 60,000 PNGs and 100,000 JPEGs (docs/performance.md).
BENCH_DIR ?= outputs/bench
bench: install
	$(PY) benchmarks/bench.py --out $(BENCH_DIR)/results.json
	$(PY) benchmarks/bench.py --scaling --cases mlp-28-64,dcgan-32-64 --out $(BENCH_DIR)/scaling.json
	$(PY) benchmarks/bench.py --folder --cases dcgan-28-64 --out $(BENCH_DIR)/folder.json
	$(PY) benchmarks/prepare_speed.py --out $(BENCH_DIR)/folders.json

# Does the offline score of an image folder rank checkpoints as the domain classifier does? (docs/quality.md)
folder-scores: install
	$(PY) benchmarks/folder_scores.py --out outputs/folder-scores

# The tables and plots in docs/ from what bench and compare last wrote under outputs/.
docs-tables: install
	$(PY) benchmarks/docs_tables.py

# On a CUDA machine: smoke test (train, resume, sample, evaluate), the bench table on the GPU, the other speed
# settings, and quality of the defaults (docs/performance.md); logs and tables in GPU_CHECK_DIR.
GPU_CHECK_DIR ?= outputs/gpu-check
gpu-check: install
	PATH=$(CURDIR)/$(VENV)/bin:$$PATH bash benchmarks/gpu_check.sh $(GPU_CHECK_DIR)

# Do the fast defaults (bf16 autocast, channels_last) change quality? Plain float32 vs auto, 3 seeds, equal steps.
SPEEDCHECK_DIR ?= outputs/speedcheck
SPEEDCHECK      = trainer.steps=1000 trainer.eval_every=1000 eval.n=2000 trainer.ckpt_every=0 trainer.sample_every=1000
speed-quality: install
	$(VENV)/bin/gan-train -m trainer.precision=32 trainer.channels_last=false seed=0,1,2 $(SPEEDCHECK) \
	  hydra.sweep.dir=$(SPEEDCHECK_DIR)/fp32
	$(VENV)/bin/gan-train -m seed=0,1,2 $(SPEEDCHECK) hydra.sweep.dir=$(SPEEDCHECK_DIR)/auto
	$(PY) benchmarks/speed_quality.py $(SPEEDCHECK_DIR)/fp32 $(SPEEDCHECK_DIR)/auto

clean:
	rm -rf $(VENV) build dist *.egg-info
