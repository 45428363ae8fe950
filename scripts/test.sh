#!/usr/bin/env bash
# The whole test suite: installs what the tests need (idempotent), then runs every test.
# CI (.ci/run) calls exactly this script.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== installing test dependencies"
bash scripts/install-test-deps.sh

echo "== formatting and lints"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings

echo "== tests"
# Every test target; benchmarks (tests/benches) are compiled by clippy above but run only
# by `cargo bench`, since they measure rather than check.
cargo test --workspace --lib --bins --tests --examples
