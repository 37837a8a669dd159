#!/usr/bin/env bash
# README command 2 (and CI): install if needed, static checks, then the test suite in two passes, both
# with the real bundled model: every test against the embedded PostgreSQL, then the tests that talk to
# a database (marker `database`) again against a separate TCP server with password auth standing in for
# a user's own (DATABASE_URL). Fails when no test ran (pytest exit code 5).
#   --fast                                                       the fast tier: static checks, then the tests
#                                                                that need neither PostgreSQL nor the model
#   DOCVEC_TEST_DATABASE_URL=postgresql://superuser:pw@host/db   one pass against that server instead
#   DOCVEC_TEST_EXTERNAL=0                                       skip the second pass
# Other arguments go to pytest (a -m expression is combined with each pass's own).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/bootstrap.sh"

# Markers (pyproject.toml, tests/support/tiers.py): what each test needs.
FAST_TIER="not database and not model and not browser and not slow and not benchmark"
SECOND_PASS="database and not benchmark"  # pure tests and benchmark smoke runs need no second server

fast=0
marks=""
selected=0  # whether the arguments pick some tests (-m, -k, paths) rather than only set options
pytest_args=()
while [ "$#" -gt 0 ]; do
  case "$1" in
    --fast) fast=1 ;;
    -m) marks="$2"; selected=1; shift ;;
    -m?*) marks="${1#-m}"; selected=1 ;;
    -k*) selected=1; pytest_args+=("$1") ;;
    *) [ ! -e "${1%%::*}" ] || selected=1; pytest_args+=("$1") ;;
  esac
  shift
done
# The user's -m expression (if any) and a pass's own, both applying.
marked() {
  if [ -n "$marks" ] && [ -n "$1" ]; then echo "($marks) and ($1)"; else echo "${marks:-$1}"; fi
}

# Debian packages some tests drive: headless Chromium (web UI; printing real pages to PDF), PgBouncer
# (transaction pooling), Redis (the Celery broker of tests/test_celery.py), pandoc and qpdf (real
# Word/PowerPoint/EPUB files; an encrypted PDF), and the
# real documents themselves: the Python documentation and a TeX-typeset manual.
apt_install() {
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >/dev/null 2>&1 \
    || { apt-get update -q >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >/dev/null 2>&1; }
}
missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v pgbouncer >/dev/null 2>&1 || [ -x /usr/sbin/pgbouncer ] || missing+=(pgbouncer)
command -v pandoc >/dev/null 2>&1 || missing+=(pandoc)
command -v qpdf >/dev/null 2>&1 || missing+=(qpdf)
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
ls /usr/share/doc/python3.*/html/index.html >/dev/null 2>&1 || missing+=(python3-doc)
[ -f /usr/share/doc/libtasn1-doc/libtasn1.pdf ] || missing+=(libtasn1-doc)
# The churn benchmark's collection (tests/support/corpora.py): three more Debian documentation sets.
ls /usr/share/doc/postgresql-doc-*/html/index.html >/dev/null 2>&1 || missing+=(postgresql-doc)
[ -d /usr/share/doc/python-django-doc/html ] || missing+=(python-django-doc)
[ -f /usr/share/doc/git-doc/git.html ] || missing+=(git-doc)
# OCR of scanned PDFs and images (docvec[ocr]): the Tesseract engine and its English data.
command -v tesseract >/dev/null 2>&1 || missing+=(tesseract-ocr)
[ -n "$(ls /usr/share/tesseract-ocr/*/tessdata/eng.traineddata 2>/dev/null)" ] || missing+=(tesseract-ocr-eng)
command -v prometheus-pushgateway >/dev/null 2>&1 || [ -x /usr/bin/prometheus-pushgateway ] || missing+=(prometheus-pushgateway)
if [ "${#missing[@]}" -gt 0 ] && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  echo "==> installing ${missing[*]} for the browser, PgBouncer and document-format tests"
  apt_install "${missing[@]}" || echo "scripts/test.sh: could not install ${missing[*]}; those tests will say so" >&2
fi

# Static checks first (seconds; a failure stops the run before the suite's minutes): the engine's
# layering and Dagster boundary (import-linter), types (mypy, strict on the engine), lint (ruff).
echo "==> static checks: lint-imports, mypy, ruff"
lint-imports --no-cache >/dev/null || { lint-imports --no-cache; exit 1; }
mypy
ruff check --quiet .

run_pytest() {
  set +e
  python -m pytest "$@"
  local code=$?
  set -e
  if [ "$code" -eq 5 ]; then
    echo "scripts/test.sh: pytest collected no tests: failing on purpose" >&2
    return 1
  fi
  return "$code"
}

if [ "$fast" = 1 ]; then
  echo "==> the fast tier: tests that need neither PostgreSQL nor the model"
  run_pytest -m "$(marked "$FAST_TIER")" ${pytest_args[@]+"${pytest_args[@]}"}
  exit $?
fi

all_marks=()
[ -z "$marks" ] || all_marks=(-m "$marks")

if [ -n "${DOCVEC_TEST_DATABASE_URL:-}" ]; then
  echo "==> tests against DOCVEC_TEST_DATABASE_URL"
  run_pytest ${all_marks[@]+"${all_marks[@]}"} ${pytest_args[@]+"${pytest_args[@]}"}
  exit $?
fi

echo "==> tests against the embedded PostgreSQL"
run_pytest ${all_marks[@]+"${all_marks[@]}"} ${pytest_args[@]+"${pytest_args[@]}"}

if [ "${DOCVEC_TEST_EXTERNAL:-1}" != 0 ]; then
  echo "==> the tests that talk to a database, against a separate TCP PostgreSQL (password auth), as DATABASE_URL"
  external_dir="$(mktemp -d)"
  trap 'python -m tests.support.pg_cluster stop "$external_dir/data" >/dev/null 2>&1 || true; rm -rf "$external_dir"' EXIT
  DOCVEC_TEST_DATABASE_URL="$(python -m tests.support.pg_cluster start "$external_dir/data" 2>/dev/null)"
  export DOCVEC_TEST_DATABASE_URL
  set +e
  python -m pytest -m "$(marked "$SECOND_PASS")" ${pytest_args[@]+"${pytest_args[@]}"}
  code=$?
  set -e
  # A selection of the user's with no database test in it has nothing to run twice; the whole suite
  # with none means the markers broke: that fails.
  if [ "$code" -eq 5 ] && [ "$selected" = 1 ]; then
    echo "scripts/test.sh: nothing in this selection talks to a database: no second pass"
    code=0
  elif [ "$code" -eq 5 ]; then
    echo "scripts/test.sh: the second pass collected no tests: failing on purpose" >&2
    code=1
  fi
  exit "$code"
fi
