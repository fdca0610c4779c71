#!/usr/bin/env bash
# `make run`: make sure Redis answers, make the secret key on first start, migrate, then
# start supervisord (scripts/supervisord.conf), which runs Daphne, one inference worker, the
# maintenance worker with Celery beat (retention) and, if it had to be started, a private
# redis-server, and restarts whichever dies.
# Ctrl-C stops them all.
set -euo pipefail
cd "$(dirname "$0")/.."

export PORT="${PORT:-8000}"
export HOST="${HOST:-127.0.0.1}"
export REDIS_URL="${REDIS_URL:-redis://127.0.0.1:6379/0}"
export MAX_BATCH="${MAX_BATCH:-32}"
PY=.venv/bin/python
mkdir -p .run

# Daphne and the worker write their metrics there and /metrics adds them up; the files of
# the last run are stale (their processes are gone), so each start begins empty.
export PROMETHEUS_MULTIPROC_DIR="${PROMETHEUS_MULTIPROC_DIR:-$PWD/.run/prometheus}"
mkdir -p "$PROMETHEUS_MULTIPROC_DIR"
"$PY" -c "import pathlib, sys; [p.unlink() for p in pathlib.Path(sys.argv[1]).glob('*.db')]" "$PROMETHEUS_MULTIPROC_DIR"

# Plain HTTP, not HTTPS: production's TLS defaults (redirect, Secure cookies, HSTS)
# would lock a browser out, so `make run` turns them off unless they are set.
export SECURE_SSL_REDIRECT="${SECURE_SSL_REDIRECT:-0}"
export SESSION_COOKIE_SECURE="${SESSION_COOKIE_SECURE:-0}"
export SECURE_HSTS_SECONDS="${SECURE_HSTS_SECONDS:-0}"
case "$HOST" in
  127.0.0.1 | localhost | ::1) export ALLOWED_HOSTS="${ALLOWED_HOSTS:-127.0.0.1,localhost,[::1]}" ;;
  *)
    if [ -z "${ALLOWED_HOSTS:-}" ]; then
      echo "HOST=$HOST serves other machines: set ALLOWED_HOSTS to the names and addresses they" >&2
      echo "will type, e.g. make run HOST=$HOST ALLOWED_HOSTS=192.168.1.20,chat.lan (README: LAN)." >&2
      exit 1
    fi
    ;;
esac

redis_answers() { "$PY" -c "import redis, sys; redis.Redis.from_url(sys.argv[1], socket_timeout=2).ping()" "$REDIS_URL" 2>/dev/null; }

export RUN_REDIS=false RUN_REDIS_PORT=6379
if ! redis_answers; then
  if command -v redis-server >/dev/null 2>&1; then
    RUN_REDIS_PORT=$("$PY" -c "import sys; from urllib.parse import urlparse; print(urlparse(sys.argv[1]).port or 6379)" "$REDIS_URL")
    RUN_REDIS=true
    echo "Nothing answers at $REDIS_URL: starting a private redis-server on port $RUN_REDIS_PORT."
  else
    echo "Nothing answers at REDIS_URL=$REDIS_URL and redis-server is not installed." >&2
    echo "Install it (Debian/Ubuntu: sudo apt-get install redis-server; macOS: brew install redis)" >&2
    echo "or point REDIS_URL at a running Redis." >&2
    exit 1
  fi
fi

# DEBUG stays off unless asked for (DEBUG=1 make run), so a key is needed: settings read
# .secret_key (or SECRET_KEY_FILE) when SECRET_KEY is not set, so that `manage.py`
# commands in another terminal sign with the same one.
# (The file, not `-m webapp.secret_key`: the package would load Celery first, a second here.)
if [ -z "${SECRET_KEY:-}" ]; then "$PY" webapp/secret_key.py; fi
"$PY" manage.py migrate --noinput
"$PY" manage.py ensure_admin

echo
case "$HOST" in
  127.0.0.1 | localhost | ::1) echo "  Mistral Chat is starting at http://$HOST:$PORT/  (Ctrl-C stops it)" ;;
  *) echo "  Mistral Chat is starting on $HOST:$PORT for http://{$ALLOWED_HOSTS}:$PORT/  (Ctrl-C stops it)" ;;
esac
echo
# supervisord in a process group of its own, so that the terminal's signals reach only this
# script, which turns Ctrl-C, a closed terminal or a TERM into one orderly stop
# (supervisord itself would take the hang-up as "reload").
supervisor=
gave_up=
stop() { [ -z "$supervisor" ] || kill -TERM "$supervisor" 2>/dev/null || true; }
trap stop INT TERM HUP
# scripts/stop_on_fatal.py signals USR1 when a program would not stay up.
export MAKE_RUN_PID=$$
trap 'gave_up=1; stop' USR1
"$PY" -c 'import os, sys; os.setpgid(0, 0); os.execv(sys.argv[1], sys.argv[1:])' \
  .venv/bin/supervisord -c scripts/supervisord.conf &
supervisor=$!
while true; do
  status=0
  wait "$supervisor" || status=$?
  kill -0 "$supervisor" 2>/dev/null || break
done
if [ -n "$gave_up" ]; then exit 1; fi
exit "$status"
