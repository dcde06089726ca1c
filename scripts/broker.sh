#!/usr/bin/env bash
# culla's test broker: the pinned tansu 0.6.0 (an Apache Kafka compatible broker).
#
#   scripts/broker.sh install                         build tansu 0.6.0 once into $CULLA_TANSU_ROOT
#   scripts/broker.sh start [--port P] [--storage memory|sqlite] [--dir D]
#                                                     start it in the background, wait until it
#                                                     answers, print CULLA_TEST_BROKERS=127.0.0.1:P
#   scripts/broker.sh stop  [--port P] [--dir D]      stop it and wait until it is gone
#   scripts/broker.sh status [--port P] [--dir D]     say whether it runs (exit 0) or not (exit 1)
#
# Every command is idempotent: `start` on a running broker only prints its address, `stop`
# on a stopped one does nothing. The pid file, log file and (for --storage sqlite) the
# database tansu.db live in --dir (default $XDG_RUNTIME_DIR or /tmp, culla-broker-<port>).
# A broker started with --storage sqlite keeps its topics across stop/start of the same
# --dir; --storage memory (the default) forgets everything when stopped.
#
# Environment: CULLA_TANSU_ROOT (install root, default
# ${XDG_CACHE_HOME:-$HOME/.cache}/culla/tansu-0.6.0), CULLA_BROKER_PORT (default 19092).
set -euo pipefail

VERSION=0.6.0
ROOT="${CULLA_TANSU_ROOT:-${XDG_CACHE_HOME:-$HOME/.cache}/culla/tansu-$VERSION}"
TANSU="$ROOT/bin/tansu"
PORT="${CULLA_BROKER_PORT:-19092}"
STORAGE=memory
DIR=""

die() { echo "broker.sh: $*" >&2; exit 1; }

usage() { sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'; }

cmd="${1:-}"
[ -n "$cmd" ] || { usage; exit 2; }
shift
while [ $# -gt 0 ]; do
  case "$1" in
    --port) PORT="${2:?--port needs a value}"; shift 2 ;;
    --storage) STORAGE="${2:?--storage needs memory or sqlite}"; shift 2 ;;
    --dir) DIR="${2:?--dir needs a directory}"; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) die "unknown option $1 (see scripts/broker.sh --help)" ;;
  esac
done
case "$PORT" in ''|*[!0-9]*) die "--port must be a number, not '$PORT'" ;; esac
[ -n "$DIR" ] || DIR="${XDG_RUNTIME_DIR:-/tmp}/culla-broker-$PORT"
PIDFILE="$DIR/tansu.pid"
LOGFILE="$DIR/tansu.log"

installed() {
  [ -x "$TANSU" ] && "$TANSU" --version 2>/dev/null | grep -q "$VERSION"
}

install() {
  if installed; then
    echo "tansu $VERSION already installed at $TANSU"
    return
  fi
  command -v cargo >/dev/null || die "cargo is needed to build tansu $VERSION"
  echo "building tansu $VERSION into $ROOT (takes ~15 minutes on 2 cores)" >&2
  cargo install tansu --version "$VERSION" --locked --features dynostore,libsql --root "$ROOT"
  installed || die "tansu was built but $TANSU does not report version $VERSION"
}

running_pid() {
  [ -f "$PIDFILE" ] || return 1
  local pid
  pid="$(cat "$PIDFILE")"
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
  echo "$pid"
}

# True when something accepts TCP connections and answers a Kafka ApiVersions request.
answers() {
  python3 - "$PORT" <<'EOF' 2>/dev/null
import socket, struct, sys
port = int(sys.argv[1])
client = b"culla-broker-sh"
# ApiVersions v0 request: api_key 18, version 0, correlation id 7, client id.
body = struct.pack(">hhih", 18, 0, 7, len(client)) + client
with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
    s.settimeout(2)
    s.sendall(struct.pack(">i", len(body)) + body)
    head = s.recv(8)
    size, corr = struct.unpack(">ii", head)
    sys.exit(0 if corr == 7 and size > 4 else 1)
EOF
}

start() {
  installed || die "tansu $VERSION is not installed at $TANSU; run: scripts/broker.sh install"
  mkdir -p "$DIR"
  if pid="$(running_pid)"; then
    echo "tansu already running (pid $pid) on port $PORT" >&2
  else
    if answers; then
      die "port $PORT is already taken by another process"
    fi
    case "$STORAGE" in
      memory) ENGINE="memory://tansu/" ;;
      # tansu resolves sqlite://NAME against its working directory: run it in $DIR.
      sqlite) ENGINE="sqlite://tansu.db" ;;
      *) die "--storage must be memory or sqlite, not '$STORAGE'" ;;
    esac
    (
      cd "$DIR"
      exec nohup "$TANSU" broker \
        --listener-url "tcp://127.0.0.1:$PORT" \
        --advertised-listener-url "tcp://127.0.0.1:$PORT" \
        --storage-engine "$ENGINE" \
        --silent >>"$LOGFILE" 2>&1 </dev/null
    ) &
    echo $! >"$PIDFILE"
  fi
  for _ in $(seq 1 150); do
    if answers; then
      echo "CULLA_TEST_BROKERS=127.0.0.1:$PORT"
      return
    fi
    running_pid >/dev/null || die "tansu exited while starting; see $LOGFILE: $(tail -n 3 "$LOGFILE" 2>/dev/null)"
    sleep 0.1
  done
  die "tansu did not answer on port $PORT within 15 s; see $LOGFILE"
}

stop() {
  local pid
  if ! pid="$(running_pid)"; then
    rm -f "$PIDFILE"
    echo "tansu not running on port $PORT" >&2
    return
  fi
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 1 100); do
    kill -0 "$pid" 2>/dev/null || { rm -f "$PIDFILE"; echo "tansu stopped (pid $pid)" >&2; return; }
    sleep 0.1
  done
  kill -9 "$pid" 2>/dev/null || true
  while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
  rm -f "$PIDFILE"
  echo "tansu killed (pid $pid) after 10 s" >&2
}

status() {
  if pid="$(running_pid)"; then
    echo "tansu running (pid $pid), CULLA_TEST_BROKERS=127.0.0.1:$PORT"
  else
    echo "tansu not running on port $PORT"
    return 1
  fi
}

case "$cmd" in
  install) install ;;
  start) start ;;
  stop) stop ;;
  status) status ;;
  -h|--help|help) usage ;;
  *) usage; exit 2 ;;
esac
