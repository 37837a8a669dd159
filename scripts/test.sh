#!/usr/bin/env bash
# README command 2 (and CI): install if needed, then the whole test suite twice: against the embedded
# PostgreSQL, then against a separate TCP server with password auth standing in for a user's own
# (DATABASE_URL), both with the real bundled model. Fails when no test ran (pytest exit code 5).
#   DOCVEC_TEST_DATABASE_URL=postgresql://superuser:pw@host/db  one pass against that server instead
#   DOCVEC_TEST_EXTERNAL=0                                       skip the second pass
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/bootstrap.sh"

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

if [ -n "${DOCVEC_TEST_DATABASE_URL:-}" ]; then
  echo "==> tests against DOCVEC_TEST_DATABASE_URL"
  run_pytest "$@"
  exit $?
fi

echo "==> tests against the embedded PostgreSQL"
run_pytest "$@"

if [ "${DOCVEC_TEST_EXTERNAL:-1}" != 0 ]; then
  echo "==> the same tests against a separate TCP PostgreSQL (password auth), as DATABASE_URL"
  external_dir="$(mktemp -d)"
  trap 'python -m tests.pg_cluster stop "$external_dir/data" >/dev/null 2>&1 || true; rm -rf "$external_dir"' EXIT
  DOCVEC_TEST_DATABASE_URL="$(python -m tests.pg_cluster start "$external_dir/data" 2>/dev/null)"
  export DOCVEC_TEST_DATABASE_URL
  run_pytest "$@"
fi
