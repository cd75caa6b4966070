#!/usr/bin/env bash
# The whole test suite: lints, unit tests, and integration tests against real MariaDB
# servers, a Galera cluster and HAProxy that the tests start themselves on loopback.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
cargo fmt --all -- --check
cargo clippy --all-targets --locked -- -D warnings
cargo test --locked --all-targets --no-fail-fast
