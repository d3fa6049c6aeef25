# Two commands set up a fresh machine and do everything:
#   make demo   - installs, trains the fast preset on Fashion-MNIST with the fast recipe for 15 minutes,
#                 exports it to ONNX (parity gate), and samples from it with ddpm-run in a torch-free venv
#   make test   - installs, then runs the test suite (what CI runs, through .ci/run)

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# The runtime-only environment: ./runtime and its dependencies, no torch (what users of ddpm-run have).
RT_VENV  ?= .venv-runtime
RT_STAMP := $(RT_VENV)/.installed
# The CPU build of PyTorch that pip finds on these machines. A looser spec would pull the newest
# multi-GB CUDA build from PyPI; the packages' own metadata stays loose (torch>=2.1) for users.
TORCH_PIN ?= torch==2.13.0
# One ONNX Runtime for both venvs, so the runtime-only venv computes the very floats the main one does.
ORT_PIN   ?= onnxruntime==1.32.0

DATA         ?= /usr/share/datasets/fashion-mnist
DEMO_MINUTES ?= 15
# The 15-minute recipe (docs/training.md, "Recipes"; chosen in docs/benchmarks/recipes.md and
# quality-per-step.md): the `fast` preset, batch 64, lr 1e-3 with warm-up and a cosine decay to the end
# of the run, an EMA of the weights, the network trained to predict v on the cosine noise schedule
# (exported models still output eps and carry their schedule), and the precision and layout chosen by
# timing a few steps on this machine (the run prints why).
DEMO_RECIPE  ?= --preset fast --batch-size 64 --lr 1e-3 --warmup-steps 100 --lr-schedule cosine \
                --ema-decay 0.995 --prediction v --schedule cosine --precision auto
DEMO_TIME    := $(shell date +%Y%m%d-%H%M%S)
DEMO_OUT     ?= runs/demo-$(DEMO_TIME)

.PHONY: install install-runtime test demo bench clean node

# tests/web runs the browser page's JavaScript under node against the NumPy runtime, with onnxruntime-web
# from npm (package-lock.json pins it), and the page itself in Debian's chromium (driven by playwright-core).
NODE_STAMP := node_modules/.installed

node: $(NODE_STAMP)

$(NODE_STAMP): package.json package-lock.json
	@command -v node >/dev/null || (apt-get update -qq && apt-get install -y -qq nodejs npm)
	@test -x /usr/bin/chromium || (apt-get update -qq && apt-get install -y -qq chromium)
	npm ci --silent --no-audit --no-fund
	touch $(NODE_STAMP)

install: $(STAMP)

$(STAMP): runtime/pyproject.toml training/pyproject.toml export/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet "$(TORCH_PIN)" "$(ORT_PIN)"
	$(PY) -m pip install --quiet -e ./runtime -e "./training[test]" -e ./export "$(ORT_PIN)"
	touch $(STAMP)

# The suite runs in one worker per core (pytest-xdist), a test file per worker so that module and
# session fixtures are made once there; tests/conftest.py gives each worker one compute thread.
test: install $(DATA) node
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(PY) -m pytest -q -n auto --dist loadfile

$(DATA):
	@echo "Fashion-MNIST not found at $(DATA); installing Debian's dataset-fashion-mnist"
	apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist

$(RT_STAMP): runtime/pyproject.toml $(wildcard runtime/src/ddpm_runtime/*.py runtime/src/ddpm_runtime/*/*.py)
	$(PYTHON) -m venv $(RT_VENV)
	$(RT_VENV)/bin/python -m pip install --quiet ./runtime "$(ORT_PIN)"
	$(RT_VENV)/bin/python -m pip install --quiet --no-deps --force-reinstall ./runtime
	touch $(RT_STAMP)

install-runtime: $(RT_STAMP)

demo: install install-runtime $(DATA)
	$(VENV)/bin/ddpm train $(DATA) $(DEMO_RECIPE) --max-minutes $(DEMO_MINUTES) \
		--checkpoint-every 500 --out $(DEMO_OUT)
	$(VENV)/bin/ddpm export-onnx $(DEMO_OUT)/checkpoint.pt -o $(DEMO_OUT)/model.onnx
	$(RT_VENV)/bin/ddpm-run sample $(DEMO_OUT)/model.onnx -n 64 \
		--out $(DEMO_OUT)/samples-onnx
	@echo "training grids: $(DEMO_OUT)/samples/   loss curve: $(DEMO_OUT)/loss.png"
	@echo "grid from the torch-free runtime: $(DEMO_OUT)/samples-onnx/grid.png"
	@echo "to measure it (docs/evaluation.md; its two classifiers train once, some minutes on a CPU):"
	@echo "  $(RT_VENV)/bin/ddpm-run sample $(DEMO_OUT)/model.onnx -n 1000 --out $(DEMO_OUT)/eval-1000"
	@echo "  $(VENV)/bin/ddpm eval $(DEMO_OUT)/eval-1000/samples.npz --real $(DATA)"

bench: install $(DATA)
	$(PY) bench/train_throughput.py --batch-size 64 --with-bf16 --also fast
	$(PY) bench/sample_throughput.py

clean:
	rm -rf $(VENV) $(RT_VENV) .pytest_cache node_modules
