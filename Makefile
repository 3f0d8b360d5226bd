# Two commands on a fresh machine:  `make book`  and  `make test`  (see README.md).
PYTHON ?= python3
CHAPTER ?=
ARGS ?=

.PHONY: setup setup-browser book test test-unit test-notebooks format reproduce runs sweep scoreboard bench clean

setup:  ## install the pinned environment and the helpers (editable) into $(PYTHON)
	$(PYTHON) -m pip install --quiet -r requirements.txt -e .

setup-browser:  ## headless Chromium + ChromeDriver for the browser test (Debian packages)
	bash tools/install_browser.sh

book: setup  ## build the rendered book into _build/html (no notebook is executed)
	jupyter-book build . -W -n --keep-going

test: setup setup-browser  ## every test: helpers, links, book build, browser, chapters in the smoke profile
	$(PYTHON) -m pytest tests
	$(PYTHON) tools/run_smoke.py

test-unit:  ## the fast unit tests only
	$(PYTHON) -m pytest tests -m "not book and not browser"

test-notebooks:  ## chapters in the smoke profile (CHAPTER=... for one)
	$(PYTHON) tools/run_smoke.py $(CHAPTER)

format:  ## one formatter for helpers, tools, tests and chapter notebooks (ruff, line length 88)
	$(PYTHON) -m ruff format .

reproduce:  ## chapters in the paper profile, in place (CHAPTER=..., ARGS='-y "seeds: [0]"')
	$(PYTHON) tools/reproduce.py $(CHAPTER) $(ARGS)

runs:  ## a chapter's run records: train the missing ones in parallel (CHAPTER=..., ARGS=--list / --print)
	$(PYTHON) tools/runs.py $(CHAPTER) $(ARGS)

sweep:  ## a chapter over seeds / settings, runs in parallel (CHAPTER=..., ARGS='--grid "seeds=[0],[1],[2]" -p profile smoke')
	$(PYTHON) tools/sweep.py $(CHAPTER) $(ARGS)

scoreboard:  ## regenerate the scoreboard and performance pages and the README tables from results/*.json
	$(PYTHON) tools/scoreboard.py

bench:  ## benchmarks (not part of the tests)
	$(PYTHON) benchmarks/bench_data_pipeline.py

clean:
	rm -rf _build results/smoke book/_smoke_*.ipynb book/_running_*.ipynb
