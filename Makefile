# The two commands of the README: `make site` and `make test`.
# Both create .venv (torch pinned to the CPU build on this machine's disk) and a
# project-local copy of tiktoken's GPT-2 encoding, then build or test.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# tiktoken's cache file for the GPT-2 encoding; copied from TIKTOKEN_SOURCE when present.
TIKTOKEN_SOURCE ?= ../shared/tiktoken-cache
TIKTOKEN_FILE   := 0ea1e91bbb3a60f729a8dc8f777fd2fc07cd8df4
export TIKTOKEN_CACHE_DIR := $(CURDIR)/.cache/tiktoken
export MPLBACKEND := Agg

.PHONY: setup site test bench clean bytecode

setup: $(VENV)/.installed $(TIKTOKEN_CACHE_DIR)/$(TIKTOKEN_FILE) bytecode

# The generator's own modules compiled ahead, as pip does for installed packages: a rebuild
# then starts without compiling them, even where PYTHONDONTWRITEBYTECODE is set (only the
# files changed since the last run are compiled again).
bytecode: $(VENV)/.installed
	@$(BIN)/python -m compileall -q labnotes >/dev/null

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

# Without a copy at TIKTOKEN_SOURCE, tiktoken downloads it (online), caching it in the same place.
$(TIKTOKEN_CACHE_DIR)/$(TIKTOKEN_FILE): | $(VENV)/.installed
	@mkdir -p $(TIKTOKEN_CACHE_DIR)
	@if [ -f "$(TIKTOKEN_SOURCE)/$(TIKTOKEN_FILE)" ]; then \
		cp "$(TIKTOKEN_SOURCE)/$(TIKTOKEN_FILE)" $@; \
	elif timeout 120 $(BIN)/python -c "import tiktoken; tiktoken.get_encoding('r50k_base')" 2>/dev/null; then \
		echo "downloaded GPT-2's encoding through tiktoken into $@"; \
	else \
		echo "warning: no GPT-2 encoding at $(TIKTOKEN_SOURCE)/$(TIKTOKEN_FILE), and tiktoken could not download it (offline?); put that file in a folder DIR and run make setup TIKTOKEN_SOURCE=DIR (labs using gpt2_tokenizer will fail)"; \
	fi

site: setup
	$(BIN)/python build.py

test: setup
	$(BIN)/python -m pytest -q -n 2

bench: setup
	$(BIN)/python bench/bench_shipped_build.py
	$(BIN)/python bench/bench_attention.py
	$(BIN)/python bench/bench_kv_cache.py
	$(BIN)/python bench/bench_training.py
	$(BIN)/python bench/site_bench.py

clean:
	rm -rf output .pytest_cache
