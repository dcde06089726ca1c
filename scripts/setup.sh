#!/usr/bin/env bash
# Installs what culla's test suite needs and is missing on this machine, then exports
# the variables the tests read. Idempotent: a second run installs nothing.
#   - Debian packages: chromium (browser tests), nodejs/npm (its DevTools-protocol
#     driver), make/g++ (bundled librdkafka build)
#   - the browser driver's npm packages (tests/browser/package-lock.json: puppeteer-core,
#     axe-core), installed in tests/browser/node_modules
#   - a Python venv with the pinned independent tools of scripts/requirements-test.txt
#   - cargo-nextest (pinned) if missing
#   - tansu 0.6.0, the Kafka-compatible broker (scripts/broker.sh install)
# Source it (`. scripts/setup.sh`) to get CULLA_PYTHON and CULLA_TANSU in your shell.
set -euo pipefail
_here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CULLA_CACHE="${CULLA_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/culla}"
export CULLA_CACHE
mkdir -p "$CULLA_CACHE"

_need_apt=()
command -v chromium >/dev/null 2>&1 || _need_apt+=(chromium)
command -v node >/dev/null 2>&1 || _need_apt+=(nodejs)
command -v npm >/dev/null 2>&1 || _need_apt+=(npm)
command -v make >/dev/null 2>&1 || _need_apt+=(make)
command -v g++ >/dev/null 2>&1 || _need_apt+=(g++)
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || _need_apt+=(python3-venv)
if [ ${#_need_apt[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${_need_apt[*]}" >&2
  _sudo=""; [ "$(id -u)" -eq 0 ] || _sudo="sudo"
  $_sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $_sudo apt-get install -y -qq "${_need_apt[@]}" >/dev/null
fi

_venv="$CULLA_CACHE/venv"
_req="$_here/requirements-test.txt"
_stamp="$_venv/.culla-requirements"
if [ ! -x "$_venv/bin/python" ] || ! cmp -s "$_req" "$_stamp"; then
  echo "setup: preparing Python tools in $_venv" >&2
  python3 -m venv "$_venv"
  "$_venv/bin/pip" install -q --disable-pip-version-check -r "$_req"
  cp "$_req" "$_stamp"
fi
export CULLA_PYTHON="$_venv/bin/python"

# The browser tests drive whatever chromium Debian gives over the DevTools protocol,
# so they read the console and the DOM the same way on every version.
_browser="$_here/../tests/browser"
if ! cmp -s "$_browser/package-lock.json" "$_browser/node_modules/.culla-lock"; then
  echo "setup: installing the browser driver (npm ci in tests/browser)" >&2
  (cd "$_browser" && PUPPETEER_SKIP_DOWNLOAD=1 npm ci --ignore-scripts --no-audit --no-fund --loglevel=error >/dev/null)
  cp "$_browser/package-lock.json" "$_browser/node_modules/.culla-lock"
fi
echo "setup: browser tests run $(chromium --version 2>/dev/null || echo 'no chromium'), node $(node --version)" >&2

if ! cargo nextest --version >/dev/null 2>&1; then
  echo "setup: installing cargo-nextest" >&2
  cargo install cargo-nextest --version 0.9.143 --locked
fi

"$_here/broker.sh" install
export CULLA_TANSU="${CULLA_TANSU_ROOT:-${XDG_CACHE_HOME:-$HOME/.cache}/culla/tansu-0.6.0}/bin/tansu"
