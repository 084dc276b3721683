# xmodal: `make demo` sets everything up and serves the default; `make test` installs and tests.
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: setup system-deps test demo lint clean image-test

setup: system-deps $(VENV)/.installed

# Debian packages (shared libraries, the real corpora, chromium for browser tests) and the package
# itself: deploy/install.sh is the one install step, shared with the Dockerfile.
system-deps:
	@deploy/install.sh system runtime data dev

$(VENV)/.installed: pyproject.toml deploy/install.sh
	deploy/install.sh python $(VENV) dev --editable
	touch $@

test: setup
	@$(PY) -m pytest -q; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests"; fi; exit $$rc

demo: setup
	$(VENV)/bin/xmodal demo

# The container image built and run here with podman (see deploy/image-test.sh); long, not in `make test`.
image-test:
	deploy/image-test.sh

lint: setup
	$(VENV)/bin/ruff check .

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache .ruff_cache
