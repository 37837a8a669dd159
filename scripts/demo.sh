#!/usr/bin/env bash
# README command 1: install, start the embedded PostgreSQL, migrate, materialize every day of the
# bundled sample corpus through Dagster (one `dg launch` run of the ingest job), and print a search result.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/bootstrap.sh"
exec docvec demo "$@"
