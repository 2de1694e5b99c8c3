# Two set-up commands on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# The CPU wheel of torch sits on disk; installing it first keeps pip from pulling GBs of CUDA packages.
TORCH  := torch==2.13.0
# What `make demo` fits (100 epochs, 18 s of CPU time; 29 s on the first run after the install, which compiles
# the bytecode); `make docs` fits the same to redraw the README's pictures (a test compares their pixels). One torch
# thread: on a loaded 2-core machine two threads spend most of their time waiting for each other (10 epochs: 3.0 s
# on one thread, 15 s on two). DEMO_LONG is the longer fit (`make demo-long`, 300 epochs at lr 1e-3, 36 s of CPU).
DEMO      := fit --model vae --data digits --inference iwae --k 5 --epochs 100 --lr 3e-3 --threads 1
DEMO_LONG := fit --model vae --data digits --inference iwae --k 5 --epochs 300 --lr 1e-3 --threads 1

.PHONY: install test test-all demo demo-long docs bench bench-steps data clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q $(TORCH)
	$(PY) -m pip install -q -e ".[test]"
	touch $(STAMP)

test: $(STAMP)
	$(VENV)/bin/pytest -q

test-all: $(STAMP)
	$(VENV)/bin/pytest -q -m ""

demo: $(STAMP)
	$(VENV)/bin/ppgen $(DEMO) --out runs/demo --overwrite
	@echo "the demo's pictures: runs/demo/samples.png, runs/demo/latent.png, runs/demo/loss.png"

demo-long: $(STAMP)
	$(VENV)/bin/ppgen $(DEMO_LONG) --out runs/demo-long --overwrite
	@echo "the long demo's pictures: runs/demo-long/samples.png, runs/demo-long/latent.png, runs/demo-long/loss.png"

# Redraws the README's pictures, runs every tutorial (full mode, one thread as their quoted figures were measured;
# outputs cached in build/docs-cache/ by file content) and builds the site into site/, offline and --strict.
docs: $(STAMP)
	OMP_NUM_THREADS=1 $(PY) docs/tools/demo_pictures.py $(DEMO)
	OMP_NUM_THREADS=1 NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict

# Every benchmark (47 min on a fresh clone, 2 cores, install included); BENCH_ARGS picks parts, e.g.
# BENCH_ARGS="--suite speed --skip-scaling".
BENCH_ARGS ?=
bench: $(STAMP)
	$(PY) bench/run.py $(BENCH_ARGS)

# The step table alone: ppgen, Pyro SVI and NumPyro's jitted SVI against the hand-written loop (NumPyro in a virtual
# environment of its own, build/bench-numpyro-venv, made on the first run); STEP_ARGS="--quick" for fewer steps.
STEP_ARGS ?=
bench-steps: $(STAMP)
	$(PY) bench/step_table.py $(STEP_ARGS)

# Fashion-MNIST's four gzipped IDX files, from Debian's package, into /usr/share/datasets/fashion-mnist/.
data:
	@if [ -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ]; then \
		echo "Fashion-MNIST is in /usr/share/datasets/fashion-mnist/"; \
	elif command -v apt-get >/dev/null; then \
		$$( [ "$$(id -u)" = 0 ] || echo sudo ) apt-get install -y dataset-fashion-mnist; \
	else \
		echo "no apt-get here: put the four Fashion-MNIST IDX files (*.gz) in a folder and set PPGEN_FASHION_MNIST to it" >&2; \
		exit 1; \
	fi

clean:
	rm -rf $(VENV) build dist *.egg-info runs site
