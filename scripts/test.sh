#!/usr/bin/env bash
# README command 2 (and CI): install if needed, then the whole test suite against a real embedded
# PostgreSQL and the real bundled model. Fails when no test ran (pytest exit code 5).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/bootstrap.sh"
set +e
python -m pytest "$@"
code=$?
set -e
if [ "$code" -eq 5 ]; then
  echo "scripts/test.sh: pytest collected no tests: failing on purpose" >&2
  exit 1
fi
exit "$code"
