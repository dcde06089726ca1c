#!/usr/bin/env bash
# culla's whole test suite, from a fresh machine: installs what is missing
# (scripts/setup.sh), starts the Kafka-compatible broker on 127.0.0.1, runs the
# format and lint checks and every test, and stops the broker it started.
#
#   scripts/test.sh                 everything
#   scripts/test.sh -E 'test(kafka)'  extra arguments go to `cargo nextest run`
#
# The Kafka tests read CULLA_TEST_BROKERS; a missing broker fails them, it never
# skips them.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/setup.sh

# A free port unless one is asked for, so a broker already running here is left alone.
port="${CULLA_TEST_PORT:-$("$CULLA_PYTHON" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}"
broker_dir="$(mktemp -d "${TMPDIR:-/tmp}/culla-broker.XXXXXX")"
stop_broker() { scripts/broker.sh stop --dir "$broker_dir" || true; rm -rf "$broker_dir"; }
trap stop_broker EXIT
scripts/broker.sh start --port "$port" --storage memory --dir "$broker_dir"
export CULLA_TEST_BROKERS="127.0.0.1:$port"

echo "== cargo fmt --check"
cargo fmt --all --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== tests"
cargo nextest run --workspace --locked --no-fail-fast "$@"
echo "== doc tests"
cargo test --workspace --doc --locked
