# xmodal: `make demo` sets everything up and serves the default; `make test` installs and tests.
VENV ?= .venv
PY := $(VENV)/bin/python
DEBIAN_PACKAGES := openclipart-svg dataset-fashion-mnist opencv-doc chromium wordnet-base

.PHONY: setup system-deps test demo lint clean

setup: system-deps $(VENV)/.installed

# Debian data packages (real corpora) and chromium (browser tests); needs root and apt-get.
system-deps:
	@missing=""; for p in $(DEBIAN_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -z "$$missing" ]; then echo "system packages present: $(DEBIAN_PACKAGES)"; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing Debian packages:$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	else \
		echo "SKIPPED Debian packages:$$missing (needs root and apt-get)."; \
		echo "  Missing corpora: openclipart-svg -> openclipart, dataset-fashion-mnist -> fashion-mnist,"; \
		echo "  opencv-doc -> part of photos and videos; chromium -> browser tests are skipped."; \
	fi

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -e '.[dev]'
	touch $@

test: setup
	@$(PY) -m pytest -q; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests"; fi; exit $$rc

demo: setup
	$(VENV)/bin/xmodal demo

lint: setup
	$(VENV)/bin/ruff check .

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache .ruff_cache
