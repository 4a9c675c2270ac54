# The two commands of the README: `make reproduce` (the study) and `make test` (every test).
# Each one creates or updates the virtual environment first, so either works on a fresh machine.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SCALE ?= cpu
# Two one-thread runs at a time keep both cores busy without oversubscribing OpenMP threads.
WORKERS ?= 2
# TABLES=all adds the extended tables (the cpu scale's part 3: at most 8 hours on 2 cores); study: part 2 only.
TABLES ?= study
# pip prints a warning per missing folder of this machine's local package index; they say nothing useful.
# (in braces, so that with pipefail a failing pip still fails the target)
PIPQUIET := { grep -v "is ignored: it is neither a file nor a directory" || true; }

.PHONY: venv reproduce test test-slow check-sync nbtest pytest docs clean-venv

venv: $(STAMP)

$(STAMP): settings.ini setup.py constraints.txt
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[dev,lab,openvino,pyiqa,slurm]' 2>&1 | $(PIPQUIET)
	$(BIN)/python -m pip check
	touch $(STAMP)

## The main job: reproduce the study at SCALE (smoke|cpu|paper) on the built-in synthetic data set.
reproduce: $(STAMP)
	$(BIN)/eat-reproduce --scale $(SCALE) --workers $(WORKERS) --tables $(TABLES)

## Every test: package in sync with the notebooks, clean notebooks, notebook tests, pytest.
test: $(STAMP) check-sync nbtest pytest

check-sync: $(STAMP)
	@before=$$(find eat nbs -type f \( -name '*.py' -o -name '*.ipynb' \) -not -path '*/.ipynb_checkpoints/*' | sort | xargs sha1sum); \
	$(BIN)/nbdev_export; $(BIN)/nbdev_clean; \
	after=$$(find eat nbs -type f \( -name '*.py' -o -name '*.ipynb' \) -not -path '*/.ipynb_checkpoints/*' | sort | xargs sha1sum); \
	if [ "$$before" != "$$after" ]; then \
	  echo "FAIL: eat/ is out of sync with nbs/ or notebooks are not clean. Changed files:"; \
	  diff <(echo "$$before") <(echo "$$after") | grep '^[<>]' | awk '{print "  " $$3}' | sort -u; \
	  echo "nbdev_export and nbdev_clean have now fixed them: review with 'git diff' and commit."; exit 1; \
	else echo "eat/ is in sync with nbs/ and the notebooks are clean."; fi

# Two notebooks at a time, one torch/OpenMP thread each: oversubscribed OpenMP threads slow torch down many times.
nbtest: $(STAMP)
	OMP_NUM_THREADS=1 $(BIN)/nbdev_test --n_workers 2 --timing

## Notebook cells flagged `#| slow` as well (minutes on 2 cores).
test-slow: $(STAMP)
	OMP_NUM_THREADS=1 $(BIN)/nbdev_test --n_workers 2 --timing --flags slow

pytest: $(STAMP)
	$(BIN)/python -m pytest -n 2 -q tests

## The documentation site (Sphinx + myst-nb): _docs/html/index.html. Warnings and broken links fail the build;
## executed tutorials are cached in _docs/.jupyter_cache, so a second build only re-runs the changed ones.
docs: $(STAMP)
	OMP_NUM_THREADS=1 $(BIN)/sphinx-build -b html -W --keep-going -q -d _docs/doctrees docs _docs/html
	@echo "docs: open _docs/html/index.html"

clean-venv:
	rm -rf $(VENV)
