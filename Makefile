# Two commands set up a fresh machine and do everything:
#   make demo   - installs, then trains the seed's U-Net on Fashion-MNIST for a few minutes
#   make test   - installs, then runs the test suite (what CI runs, through .ci/run)

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# The CPU build of PyTorch that pip finds on these machines. A looser spec would pull the newest
# multi-GB CUDA build from PyPI; the packages' own metadata stays loose (torch>=2.1) for users.
TORCH_PIN ?= torch==2.13.0

DATA         ?= /usr/share/datasets/fashion-mnist
DEMO_MINUTES ?= 5
DEMO_OUT     ?= runs/demo-$(shell date +%Y%m%d-%H%M%S)

.PHONY: install test demo bench clean

install: $(STAMP)

$(STAMP): runtime/pyproject.toml training/pyproject.toml export/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet "$(TORCH_PIN)"
	$(PY) -m pip install --quiet -e ./runtime -e "./training[test]" -e ./export
	touch $(STAMP)

test: install
	$(PY) -m pytest -q

$(DATA):
	@echo "Fashion-MNIST not found at $(DATA); installing Debian's dataset-fashion-mnist"
	apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist

demo: install $(DATA)
	$(VENV)/bin/ddpm train $(DATA) --preset seed-small --max-minutes $(DEMO_MINUTES) \
		--checkpoint-every 50 --out $(DEMO_OUT)
	@echo "sample grids: $(DEMO_OUT)/samples/   loss curve: $(DEMO_OUT)/loss.png"

bench: install $(DATA)
	$(PY) bench/train_throughput.py --bf16

clean:
	rm -rf $(VENV) .pytest_cache
