# xmodal: `make demo` sets everything up and serves the default; `make test` installs and tests.
VENV ?= .venv
PY := $(VENV)/bin/python
DEBIAN_PACKAGES := openclipart-svg dataset-fashion-mnist opencv-doc chromium

.PHONY: setup system-deps test demo lint clean faults fuzz load

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

lint: setup
	$(VENV)/bin/ruff check .

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache .ruff_cache
