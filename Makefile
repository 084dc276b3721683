# xmodal: `make demo` sets everything up and serves the default; `make test` installs and tests.
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: setup system-deps test demo lint clean faults fuzz load image-test

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

# Fault injection at full size (tests/faults with XMODAL_FAULTS=full): >= 10 SIGKILLs of the indexer over
# 1,000 items, a full tmpfs (needs root to mount), a server killed and hot-swapped under load. About
# 10 minutes on 2 cores; the figures land in RELIABILITY.md (bench/faults.py).
FAULTS_REPORT ?= var/faults.jsonl
faults: setup
	@mkdir -p $(dir $(FAULTS_REPORT)) && rm -f $(FAULTS_REPORT)
	XMODAL_FAULTS=full XMODAL_FAULTS_REPORT=$(FAULTS_REPORT) OMP_NUM_THREADS=1 \
		$(PY) -m pytest -q tests/faults tests/index/test_resume.py
	$(PY) bench/faults.py $(FAULTS_REPORT)

demo: setup
	$(VENV)/bin/xmodal demo

# schemathesis, every check, admin routes with the token, 10 minutes (the suite runs a short one)
fuzz: setup
	$(PY) bench/fuzz.py --max-time 600

# 64 loopback clients mixing text search, image search, caption, VQA and classify for 60 s
load: setup
	$(PY) bench/load.py --clients 64 --seconds 60

# The container image built and run here with podman (see deploy/image-test.sh); long, not in `make test`.
image-test:
	deploy/image-test.sh

lint: setup
	$(VENV)/bin/ruff check .

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache .ruff_cache
