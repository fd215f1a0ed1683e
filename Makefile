# make run:  install into .venv, migrate, load the policy seeds and demo data, and start the web server,
#            the Celery workers (tasks; deadlines) and Celery beat together (Procfile, through honcho); Ctrl-C stops them.
#            SQLite and kombu's filesystem broker unless DATABASE_URL / REDIS_URL are set (or in .env).
# make test: the whole suite against the real PostgreSQL and Redis on this machine.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
# honcho reads .env (if present) for both the one-off commands and the three processes, so they agree.
HONCHO_RUN := $(BIN)/honcho run
TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/cgtclinic
TEST_REDIS_URL ?= redis://127.0.0.1:6379/15
PYTEST_ARGS ?=
# pytest-xdist processes; each gets its own test database (test_cgtclinic_gwN) and Redis database.
TEST_WORKERS ?= 2
# collectstatic compresses every file (gzip and brotli) and takes a minute, so it reruns only when its inputs
# change. With CGT_DATA_DIR set elsewhere in .env only, the target is never found here and it simply runs each time.
STATIC_MANIFEST := $(or $(CGT_DATA_DIR),var)/static/staticfiles.json
STATIC_SOURCES := $(shell find cgtclinic trials ethics subsidies -path '*/static/*' -type f 2>/dev/null)

# Debian packages outside pip: WeasyPrint's Pango and HarfBuzz and a CJK font for the PDF letters (make run), and
# for the suite also Chromium (browser tests), gettext (catalogue check), poppler-utils (pdftotext) and a Latin-only
# font (the test of a machine without CJK fonts). Installed when missing if run as root on Debian; otherwise the
# target stops and prints the exact command.
RUN_PACKAGES := libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz-subset0 fonts-noto-cjk
TEST_PACKAGES := $(RUN_PACKAGES) chromium gettext poppler-utils fonts-dejavu-core
define ensure_packages
	@command -v dpkg-query >/dev/null || exit 0; \
	missing=""; \
	for package in $(1); do \
		dpkg-query --show --showformat='$${Status}' $$package 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$package"; \
	done; \
	[ -z "$$missing" ] && exit 0; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing system packages:$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	else \
		echo "cgtclinic needs these Debian packages, which are missing:$$missing" >&2; \
		echo "install them with:  sudo apt-get install$$missing" >&2; \
		exit 1; \
	fi
endef

.PHONY: run test install install-dev lint format messages bench clean system-packages system-packages-test

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else "cgtclinic needs Python 3.11; set PYTHON=/path/to/python3.11")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: requirements.txt | $(BIN)/python
	$(BIN)/pip install --quiet --requirement requirements.txt
	touch $@

$(VENV)/.installed-dev: requirements.txt requirements-dev.txt $(VENV)/.installed
	$(BIN)/pip install --quiet --requirement requirements-dev.txt
	touch $@

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

system-packages:
	$(call ensure_packages,$(RUN_PACKAGES))

system-packages-test:
	$(call ensure_packages,$(TEST_PACKAGES))

$(STATIC_MANIFEST): $(VENV)/.installed $(STATIC_SOURCES)
	$(HONCHO_RUN) $(BIN)/python manage.py collectstatic --noinput --verbosity 0

run: system-packages install $(STATIC_MANIFEST)
	$(HONCHO_RUN) $(BIN)/python manage.py migrate --noinput
	$(HONCHO_RUN) $(BIN)/python manage.py sync_calendar
	$(HONCHO_RUN) $(BIN)/python manage.py load_seeds --demo
	@echo "Starting web (http://127.0.0.1:8000/admin/), the Celery workers (tasks, deadlines) and Celery beat; Ctrl-C stops them all."
	$(BIN)/honcho start

test: system-packages-test install-dev
	DATABASE_URL=$(TEST_DATABASE_URL) REDIS_URL=$(TEST_REDIS_URL) $(BIN)/python -m pytest -p tests.xdist_redis -n $(TEST_WORKERS) $(PYTEST_ARGS)

lint: install-dev
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .

format: install-dev
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

messages: install-dev
	$(BIN)/python manage.py makemessages --locale zh_Hans --no-obsolete --ignore '.venv/*' --ignore 'var/*' --ignore 'tests/*' --ignore 'bench/run.py'
	$(BIN)/python manage.py compilemessages --locale zh_Hans --ignore '.venv/*'

# make bench: the regulator reports, admin and PI pages, the enrolment write path and the deadline sweeps on a
# provincial (default) or national data set in its own database (generated the first time), through gunicorn and wrk
# (installed with apt-get if missing, as root); see bench/run.py and docs/benchmark.md. Options go in BENCH_ARGS,
# e.g. make bench BENCH_ARGS="--scale national --phases reports,pages --duration 30".
bench: install $(STATIC_MANIFEST)
	@command -v wrk >/dev/null || { [ "$$(id -u)" = 0 ] && apt-get update -qq && apt-get install -y -qq --no-install-recommends wrk; } || { echo "make bench needs wrk: apt-get install wrk" >&2; exit 1; }
	$(BIN)/python bench/run.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) var
