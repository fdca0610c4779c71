#!/usr/bin/env bash
# `make run`: migrate, make sure Redis answers, start Daphne and one inference worker.
# Ctrl-C stops every process this script started.
set -euo pipefail
cd "$(dirname "$0")/.."

export DEBUG="${DEBUG:-1}"
export PORT="${PORT:-8000}"
export REDIS_URL="${REDIS_URL:-redis://127.0.0.1:6379/0}"
export MAX_BATCH="${MAX_BATCH:-32}"
PY=.venv/bin/python
mkdir -p .run

pids=()
cleanup() {
  trap - INT TERM EXIT
  if ((${#pids[@]})); then
    echo; echo "Stopping ${#pids[@]} processes…"
    kill -TERM "${pids[@]}" 2>/dev/null || true
    wait "${pids[@]}" 2>/dev/null || true
  fi
}
trap cleanup INT TERM EXIT

redis_answers() { "$PY" -c "import redis, sys; redis.Redis.from_url(sys.argv[1], socket_timeout=2).ping()" "$REDIS_URL" 2>/dev/null; }

if ! redis_answers; then
  if command -v redis-server >/dev/null 2>&1; then
    port=$("$PY" -c "import sys; from urllib.parse import urlparse; print(urlparse(sys.argv[1]).port or 6379)" "$REDIS_URL")
    echo "Nothing answers at $REDIS_URL: starting a private redis-server on port $port."
    redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no >.run/redis.log 2>&1 &
    pids+=($!)
    for _ in $(seq 50); do redis_answers && break; sleep 0.1; done
    redis_answers || { echo "redis-server did not come up; see .run/redis.log" >&2; exit 1; }
  else
    echo "Nothing answers at REDIS_URL=$REDIS_URL and redis-server is not installed." >&2
    echo "Install it (Debian/Ubuntu: sudo apt-get install redis-server; macOS: brew install redis)" >&2
    echo "or point REDIS_URL at a running Redis." >&2
    exit 1
  fi
fi

"$PY" manage.py migrate --noinput
"$PY" manage.py ensure_admin

.venv/bin/celery -A webapp worker -Q inference -P threads -c "$MAX_BATCH" -I inference.tasks \
  -n "inference@%h" --loglevel INFO &
pids+=($!)
.venv/bin/daphne -b 127.0.0.1 -p "$PORT" webapp.asgi:application &
pids+=($!)

echo
echo "  Mistral Chat is starting at http://127.0.0.1:$PORT/  (Ctrl-C stops it)"
echo
# Exit (and stop the rest) as soon as any one process dies.
wait -n "${pids[@]}"
