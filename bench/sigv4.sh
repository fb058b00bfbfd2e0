#!/usr/bin/env bash
# SigV4 signing speed: signatures per second of the C signer (core/aws/sl_sigv4 through
# sluice.aws.sigv4.sign, the FFI) against a pure-Lua signer (bench/sigv4/pure_sigv4.lua:
# string building + sluice.ngx.crypto's OpenSSL SHA-256/HMAC), on the same three requests
# (a Lambda Invoke with a session token, an API Gateway GET with a query, an STS form POST),
# both in one gateway worker, in one run. Both caches the signing key.
#
# It starts build/sluice (1 worker) with a pre-function route that calls
# bench/sigv4/sigv4_bench.lua: first a check that both signers give the same Authorization for
# every request (and the AWS get-vanilla signature), then alternating rounds of BENCH_SIGV4_MS
# per signer. Prints signatures/s per signer (median of rounds), the ratio C / Lua and the
# per-round ratios; writes them to bench/results/<stamp>-sigv4.txt (and latest-sigv4.txt).
#
# Env: BENCH_SIGV4_MS (500, per round and signer, 50..2000), BENCH_ROUNDS (3),
#      SLUICE_BIN (build/sluice), BENCH_KEEP=1 keeps the scratch directory.
# Runs about 2 * ROUNDS * MS plus a second of startup (3.5 s by default).
set -u

cd "$(dirname "$0")/.." || exit 1
ROOT=$(pwd)

MS=${BENCH_SIGV4_MS:-500}
ROUNDS=${BENCH_ROUNDS:-3}
SLUICE_BIN=${SLUICE_BIN:-build/sluice}
case $SLUICE_BIN in /*) ;; *) SLUICE_BIN=$ROOT/$SLUICE_BIN ;; esac

command -v curl >/dev/null 2>&1 || { echo "bench: 'curl' not found" >&2; exit 1; }
[ -x "$SLUICE_BIN" ] || { echo "bench: $SLUICE_BIN not built (make build/sluice)" >&2; exit 1; }
case $MS in ''|*[!0-9]*) echo "bench: BENCH_SIGV4_MS must be a number" >&2; exit 1 ;; esac
[ "$MS" -ge 50 ] && [ "$MS" -le 2000 ] || { echo "bench: BENCH_SIGV4_MS: 50 to 2000" >&2; exit 1; }

WORK=$(mktemp -d /tmp/sluice-bench.XXXXXX) || exit 1
STAMP=$(date +%Y%m%d-%H%M%S)
RESULTS=$ROOT/bench/results
mkdir -p "$RESULTS"
OUT=$RESULTS/$STAMP-sigv4.txt

. "$ROOT/bench/lib.sh"

PORT=$(free_port) || exit 1
sdir=$WORK/sluice
mkdir -p "$sdir"
cat > "$WORK/kong.yml" <<'EOF'
_format_version: "3.0"
services:
- name: bench
  url: http://127.0.0.1:9
  routes:
  - name: bench
    paths:
    - /bench
    plugins:
    - name: pre-function
      config:
        access:
        - return function() return require("sigv4_bench").handle() end
EOF
cat > "$WORK/sluice.conf" <<EOF
prefix = $sdir
proxy_listen = 127.0.0.1:$PORT
admin_listen = off
worker_processes = 1
daemon = on
plugins = bundled
untrusted_lua = on
lua_package_path = $ROOT/bench/sigv4/?.lua;;
log_level = ${BENCH_SLUICE_LOG_LEVEL:-notice}
proxy_access_log = off
declarative_config = $WORK/kong.yml
EOF
SLUICE_PREFIX=$sdir
if ! timeout 30 "$SLUICE_BIN" start -c "$WORK/sluice.conf" -p "$sdir" > "$WORK/start.log" 2>&1; then
    echo "bench: '$SLUICE_BIN start' failed:" >&2
    tail -20 "$WORK/start.log" "$sdir/logs/error.log" >&2 2>/dev/null
    exit 1
fi
spid=$(cat "$sdir/pids/sluice.pid" 2>/dev/null)
[ -n "$spid" ] && PIDS="$PIDS $spid"

get() { curl -s --max-time 10 "http://127.0.0.1:$PORT/bench?$1"; }

i=0
until [ "$(get check=1)" = "ok" ]; do
    i=$((i + 1))
    if [ $i -ge 50 ]; then
        echo "bench: the signers do not agree, or the gateway does not answer:" >&2
        get check=1 >&2
        tail -20 "$sdir/logs/error.log" >&2
        exit 1
    fi
    sleep 0.1
done

# warm up both (JIT traces), then alternate
get "signer=c&ms=100" >/dev/null
get "signer=lua&ms=100" >/dev/null
: > "$WORK/c.rows"
: > "$WORK/lua.rows"
r=1
while [ "$r" -le "$ROUNDS" ]; do
    for s in c lua; do
        line=$(get "signer=$s&ms=$MS")
        set -- $line
        if [ "${1:-}" != "$s" ] || [ -z "${4:-}" ]; then
            echo "bench: round $r, $s: unexpected answer '$line'" >&2
            tail -20 "$sdir/logs/error.log" >&2
            exit 1
        fi
        echo "$4 $2 $3" >> "$WORK/$s.rows"
    done
    r=$((r + 1))
done

median() { sort -n -k1,1 "$1" | awk '{ r[NR] = $1 } END { print r[int((NR + 1) / 2)] }'; }
C_RATE=$(median "$WORK/c.rows")
LUA_RATE=$(median "$WORK/lua.rows")
PER_ROUND=$(paste -d' ' "$WORK/c.rows" "$WORK/lua.rows" |
    awk '{ if ($4 > 0) printf "%s%.2f", (NR > 1 ? ", " : ""), $1 / $4 }')

{
    echo "Sluice SigV4 bench $STAMP  rev $(git rev-parse --short HEAD 2>/dev/null || echo none)"
    echo "3 requests (Lambda Invoke + session token, API Gateway GET + query, STS form POST), signing key cached;"
    echo "${MS} ms per signer per round, $ROUNDS alternating rounds, median shown; 1 gateway worker; $(nproc) CPUs"
    echo
    printf '%-28s %14s\n' signer "signatures/s"
    printf '%-28s %14s\n' "c (sluice.aws.sigv4.sign)" "$C_RATE"
    printf '%-28s %14s\n' "lua (bench/sigv4/pure_sigv4)" "$LUA_RATE"
    echo
    awk -v a="$C_RATE" -v b="$LUA_RATE" 'BEGIN { if (b > 0) printf "c / lua: %.2f\n", a / b }'
    echo "per round: $PER_ROUND"
} | tee "$OUT"
cp "$OUT" "$RESULTS/latest-sigv4.txt"
echo "bench: results in $OUT"
