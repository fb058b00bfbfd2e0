#!/usr/bin/env bash
# Sluice pre-function benchmark: the cost of a few lines of Lua on the request
# path. One upstream (nginx, `return 200 "hello"`), then wrk, sending
# `X-In: bench` on every request, against
#   (0) the upstream directly,
#   (a) nginx + lua-nginx-module as a keepalive reverse proxy whose
#       access_by_lua_block copies the request header into a response header:
#       ngx.header["X-Echo"] = ngx.var.http_x_in
#   (b) build/sluice, one service + route, a pre-function on the route doing
#       kong.response.set_header("X-Echo", kong.request.get_header("x-in"))
# Both proxies are checked first (GET / with X-In: check must answer "hello"
# with X-Echo: check). Prints a table (requests/s, p50, p99, errors, ratio to
# the nginx row) and writes it, with the raw wrk outputs, to
# bench/results/<stamp>-prefunction.txt. See bench/README.md.
#
# Env: BENCH_SECONDS (10), BENCH_WARMUP (2), BENCH_THREADS (2),
#      BENCH_CONNECTIONS (64), BENCH_ROUNDS (3), SLUICE_BIN (build/sluice),
#      NGINX (nginx), WRK (wrk), NGINX_MODULES (/usr/lib/nginx/modules),
#      BENCH_KEEP=1 keeps the scratch directory.
set -u

cd "$(dirname "$0")/.." || exit 1
ROOT=$(pwd)

WORK=""  # lib.sh's exit trap removes it; bench_dirs makes it
. "$ROOT/bench/lib.sh"

bench_settings 10 2 64 3
NGINX=${NGINX:-nginx}
NGINX_MODULES=${NGINX_MODULES:-/usr/lib/nginx/modules}
need_tools "$NGINX" "$WRK" curl

# lua-nginx-module as a dynamic module (Debian's libnginx-mod-http-lua), unless
# this nginx has it built in (OpenResty): then NGINX_MODULES= (empty).
LOAD_MODULES=""
if [ -n "$NGINX_MODULES" ]; then
    for m in ndk_http_module ngx_http_lua_module; do
        [ -f "$NGINX_MODULES/$m.so" ] || {
            echo "bench: $NGINX_MODULES/$m.so not found (apt-get install libnginx-mod-http-lua, or NGINX_MODULES= for OpenResty)" >&2
            exit 1
        }
        LOAD_MODULES="${LOAD_MODULES}load_module $NGINX_MODULES/$m.so;
"
    done
fi

bench_dirs prefunction


# check_echo PORT: "" when GET / with X-In: check gives "hello" and
# X-Echo: check, else what it gave.
check_echo() {
    local hdrs body echo
    hdrs=$WORK/check.$1.headers
    body=$(curl -s --max-time 2 -D "$hdrs" -H 'X-In: check' "http://127.0.0.1:$1/")
    echo=$(awk 'tolower($1) == "x-echo:" { sub(/\r$/, "", $2); print $2 }' "$hdrs")
    if [ "$body" != "hello" ] || [ "$echo" != "check" ]; then
        echo "GET / with X-In: check gave body '$body', X-Echo '$echo'"
    fi
}



# every wrk request carries the header the Lua copies
WRK_SCRIPT=$WORK/x-in.lua
cat > "$WRK_SCRIPT" <<'EOF'
wrk.headers["X-In"] = "bench"
EOF

UP_PORT=$(free_port) || exit 1
PROXY_PORT=$(free_port) || exit 1
SLUICE_PORT=$(free_port) || exit 1

start_nginx upstream "    server {
        listen 127.0.0.1:$UP_PORT backlog=4096;
        location / { return 200 \"hello\"; }
    }" || exit 1
wait_http "$UP_PORT" 'X-In: wait' || { echo "bench: the upstream does not answer" >&2; exit 1; }

start_nginx nginx-lua "    upstream up {
        server 127.0.0.1:$UP_PORT;
        keepalive 64;
    }
    server {
        listen 127.0.0.1:$PROXY_PORT backlog=4096;
        location / {
            access_by_lua_block {
                ngx.header[\"X-Echo\"] = ngx.var.http_x_in
            }
            proxy_pass http://up;
            proxy_http_version 1.1;
            proxy_set_header Connection \"\";
        }
    }" "$LOAD_MODULES" || exit 1
wait_http "$PROXY_PORT" 'X-In: wait' || { echo "bench: the nginx proxy does not answer" >&2; exit 1; }
bad=$(check_echo "$PROXY_PORT")
[ -z "$bad" ] || { echo "bench: nginx-lua: $bad" >&2; tail -20 "$WORK/nginx-lua/error.log" >&2; exit 1; }

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
    plugins:
    - name: pre-function
      config:
        access:
        - kong.response.set_header("X-Echo", kong.request.get_header("x-in"))
EOF
    cat > "$WORK/sluice.conf" <<EOF
prefix = $sdir
proxy_listen = 127.0.0.1:$SLUICE_PORT
admin_listen = off
worker_processes = 1
daemon = on
plugins = bundled
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
        bad="sluice does not answer"
        wait_http "$SLUICE_PORT" 'X-In: wait' && bad=$(check_echo "$SLUICE_PORT")
        if [ -n "$bad" ]; then
            SLUICE_NOTE="sluice skipped: $bad
$(tail -20 "$sdir/logs/error.log" 2>/dev/null)"
        else
            SLUICE_OK=1
        fi
    fi
    cp "$WORK/sluice.conf" "$WORK/kong.yml" "$RAW/" 2>/dev/null
fi
cp "$WORK/nginx-lua/nginx.conf" "$RAW/nginx-lua.conf" 2>/dev/null

# Rounds alternate between the two proxies so that a change in the machine's load
# during the run hits both alike; each row reports its median round.
run_wrk upstream "$UP_PORT" 1 "$WRK_SCRIPT" ", X-In"
r=1
while [ "$r" -le "$ROUNDS" ]; do
    run_wrk nginx-lua "$PROXY_PORT" "$r" "$WRK_SCRIPT" ", X-In"
    [ -n "$SLUICE_OK" ] && run_wrk sluice-pre "$SLUICE_PORT" "$r" "$WRK_SCRIPT" ", X-In"
    r=$((r + 1))
done
[ -n "$SLUICE_PREFIX" ] && [ -f "$SLUICE_PREFIX/logs/error.log" ] &&
    tail -200 "$SLUICE_PREFIX/logs/error.log" > "$RAW/sluice.error.log"

ROWS="$(median_row upstream)
$(median_row nginx-lua)
$(median_row sluice-pre)
"
NGINX_RPS=$(median_row nginx-lua | awk '{ print $2 }')
SLUICE_RPS=$(median_row sluice-pre | awk '{ print $2 }')
PER_ROUND=""
if [ -n "$SLUICE_OK" ]; then
    PER_ROUND=$(paste -d' ' "$RAW/nginx-lua.rows" "$RAW/sluice-pre.rows" |
        awk '{ if ($1 > 0) printf "%s%.2f", (NR > 1 ? ", " : ""), $6 / $1 }')
fi

{
    echo "Sluice pre-function bench $STAMP  rev $(git rev-parse --short HEAD 2>/dev/null || echo none)"
    echo "wrk -t$THREADS -c$CONNS -d${SECS}s --latency, header X-In (warmup ${WARMUP}s), $ROUNDS alternating rounds, median shown; $(nproc) CPUs; 1 worker each; upstream returns 200 \"hello\""
    echo "nginx-lua:  access_by_lua_block { ngx.header[\"X-Echo\"] = ngx.var.http_x_in } + proxy_pass (keepalive 64)"
    echo "sluice-pre: pre-function access: kong.response.set_header(\"X-Echo\", kong.request.get_header(\"x-in\"))"
    echo
    rows_table 10 nginx "$NGINX_RPS" "$ROWS"
    if [ -n "$SLUICE_RPS" ] && [ -n "$NGINX_RPS" ]; then
        echo
        awk -v a="$SLUICE_RPS" -v b="$NGINX_RPS" 'BEGIN { if (b > 0) printf "sluice-pre / nginx-lua (requests/s, median of rounds): %.2f\n", a / b }'
        echo "per round: $PER_ROUND"
    fi
    if [ -n "$SLUICE_NOTE" ]; then
        echo
        echo "$SLUICE_NOTE"
    fi
} | tee "$OUT"
cp "$OUT" "$RESULTS/latest-prefunction.txt"
echo "bench: results in $OUT (raw wrk output in $RAW/)"
