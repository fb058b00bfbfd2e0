#!/usr/bin/env bash
# Sluice benchmark: one upstream (nginx, `return 200 "hello"`), then wrk
# against (0) the upstream directly, (a) nginx as a keepalive reverse proxy,
# (b) build/sluice with one service + route, if it starts. Prints a table
# (requests/s, p50, p99, errors, ratio to nginx) and writes it, with the raw
# wrk outputs, to bench/results/. See bench/README.md.
#
# Env: BENCH_SECONDS (10), BENCH_WARMUP (2), BENCH_THREADS (2),
#      BENCH_CONNECTIONS (64), SLUICE_BIN (build/sluice), NGINX (nginx),
#      WRK (wrk), BENCH_KEEP=1 keeps the scratch directory.
set -u

cd "$(dirname "$0")/.." || exit 1
ROOT=$(pwd)

WORK=""  # lib.sh's exit trap removes it; bench_dirs makes it
. "$ROOT/bench/lib.sh"

bench_settings 10 2 64 3
NGINX=${NGINX:-nginx}
need_tools "$NGINX" "$WRK" curl
bench_dirs proxy

ROWS=""
NGINX_RPS=""
SLUICE_RPS=""

UP_PORT=$(free_port) || exit 1
PROXY_PORT=$(free_port) || exit 1
SLUICE_PORT=$(free_port) || exit 1

start_nginx upstream "    server {
        listen 127.0.0.1:$UP_PORT backlog=4096;
        location / { return 200 \"hello\"; }
    }" || exit 1
wait_http "$UP_PORT" || { echo "bench: the upstream does not answer" >&2; exit 1; }

start_nginx nginx "    upstream up {
        server 127.0.0.1:$UP_PORT;
        keepalive 64;
    }
    server {
        listen 127.0.0.1:$PROXY_PORT backlog=4096;
        location / {
            proxy_pass http://up;
            proxy_http_version 1.1;
            proxy_set_header Connection \"\";
        }
    }" || exit 1
wait_http "$PROXY_PORT" || { echo "bench: the nginx proxy does not answer" >&2; exit 1; }

SLUICE_NOTE=""
SLUICE_OK=""
if [ ! -x "$SLUICE_BIN" ]; then
    SLUICE_NOTE="sluice skipped: $SLUICE_BIN not built (make build/sluice)"
else
    sdir=$WORK/sluice
    mkdir -p "$sdir"
    cat > "$WORK/kong.yml" <<EOF
_format_version: "3.0"
services:
- name: bench
  url: http://127.0.0.1:$UP_PORT
  routes:
  - name: bench
    paths:
    - /
EOF
    cat > "$WORK/sluice.conf" <<EOF
prefix = $sdir
proxy_listen = 127.0.0.1:$SLUICE_PORT
admin_listen = off
worker_processes = 1
daemon = on
log_level = ${BENCH_SLUICE_LOG_LEVEL:-notice}
# like the nginx row (access_log off): both compared without access logging
proxy_access_log = off
database = off
declarative_config = $WORK/kong.yml
EOF
    SLUICE_PREFIX=$sdir
    if ! timeout 30 "$SLUICE_BIN" start -c "$WORK/sluice.conf" -p "$sdir" \
            > "$WORK/sluice.start.log" 2>&1; then
        SLUICE_NOTE="sluice skipped: '$SLUICE_BIN start' failed:
$(tail -20 "$WORK/sluice.start.log")
$(tail -20 "$sdir/logs/error.log" 2>/dev/null)"
    else
        spid=$(cat "$sdir/pids/sluice.pid" 2>/dev/null)
        [ -n "$spid" ] && PIDS="$PIDS $spid"
        body=""
        wait_http "$SLUICE_PORT" && body=$(curl -s --max-time 2 "http://127.0.0.1:$SLUICE_PORT/")
        if [ "$body" != "hello" ]; then
            SLUICE_NOTE="sluice skipped: GET / through sluice gave '$body', not 'hello'
$(tail -20 "$sdir/logs/error.log" 2>/dev/null)"
        else
            SLUICE_OK=1
        fi
    fi
    cp "$WORK/sluice.conf" "$WORK/kong.yml" "$RAW/" 2>/dev/null
    [ -f "$sdir/logs/error.log" ] && tail -200 "$sdir/logs/error.log" > "$RAW/sluice.error.log"
fi

# Rounds alternate between the two proxies so that a change in the machine's load
# during the run hits both alike; each row reports its median round.
run_wrk upstream "$UP_PORT" 1
r=1
while [ "$r" -le "$ROUNDS" ]; do
    run_wrk nginx "$PROXY_PORT" "$r"
    [ -n "$SLUICE_OK" ] && run_wrk sluice "$SLUICE_PORT" "$r"
    r=$((r + 1))
done
ROWS="$(median_row upstream)
$(median_row nginx)
$(median_row sluice)
"
NGINX_RPS=$(median_row nginx | awk '{ print $2 }')
SLUICE_RPS=$(median_row sluice | awk '{ print $2 }')
PER_ROUND=""
if [ -n "$SLUICE_OK" ]; then
    PER_ROUND=$(paste -d' ' "$RAW/nginx.rows" "$RAW/sluice.rows" |
        awk '{ if ($1 > 0) printf "%s%.2f", (NR > 1 ? ", " : ""), $6 / $1 }')
fi

{
    echo "Sluice bench $STAMP  rev $(git rev-parse --short HEAD 2>/dev/null || echo none)"
    echo "wrk -t$THREADS -c$CONNS -d${SECS}s --latency (warmup ${WARMUP}s), $ROUNDS alternating rounds, median shown; $(nproc) CPUs; 1 worker each; upstream returns 200 \"hello\""
    echo
    rows_table 10 nginx "$NGINX_RPS" "$ROWS"
    if [ -n "$SLUICE_RPS" ] && [ -n "$NGINX_RPS" ]; then
        echo
        awk -v a="$SLUICE_RPS" -v b="$NGINX_RPS" 'BEGIN { if (b > 0) printf "sluice / nginx (requests/s, median of rounds): %.2f\n", a / b }'
        echo "per round: $PER_ROUND"
    fi
    if [ -n "$SLUICE_NOTE" ]; then
        echo
        echo "$SLUICE_NOTE"
    fi
} | tee "$OUT"
cp "$OUT" "$RESULTS/latest.txt"
echo "bench: results in $OUT (raw wrk output in $RAW/)"
