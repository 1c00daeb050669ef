# make test: set up .venv from scratch and run the tests; make demo: train and sample offline.
VENV  ?= .venv
PY    := $(VENV)/bin/python
# The torch build to install first (these lie on this project's machines); set TORCH= to let pip choose.
TORCH ?= torch==2.14.1 torchvision==0.29.1
DEMO_STEPS ?= 2000
DEMO_DIR   ?= outputs/demo/$(shell date +%Y%m%d-%H%M%S)

.PHONY: install test test-all demo clean

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

demo: install
	$(VENV)/bin/gan-train data=mnist5k trainer.steps=$(DEMO_STEPS) hydra.run.dir=$(DEMO_DIR)
	$(VENV)/bin/gan-sample ckpt=$(DEMO_DIR) n=64 seed=0 out=$(DEMO_DIR)/generated
	@echo "demo: samples in $(DEMO_DIR)/generated/grid.png; tensorboard --logdir $(DEMO_DIR)/tb"

clean:
	rm -rf $(VENV) build dist *.egg-info
