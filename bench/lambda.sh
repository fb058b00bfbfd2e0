#!/usr/bin/env bash
# Sluice aws-lambda benchmark: what the gateway adds to a Lambda Invoke call.
# One Lambda mock (spec/fixtures/mock_faas, `echo` function, SigV4 verified),
# then wrk against
#   (a) the mock directly: the Invoke request the plugin would send for
#       `GET /` (POST /2015-03-31/functions/echo/invocations, body {}),
#       signed once here with spec/fixtures/mock_faas/sigv4.lua and replayed
#       (the mock's clock-skew check is off for the run);
#   (b) build/sluice, 1 worker, a route whose aws-lambda plugin invokes the
#       mock: payload, SigV4 signature, pooled connection, response mapping
#       on every request.
# Both are checked first (each must answer 200 with {}). Prints a table
# (requests/s, p50, p99, errors, ratio to the direct row) and writes it,
# with the raw wrk outputs, to bench/results/<stamp>-lambda.txt. The mock
# is a Python threaded server: it is the bottleneck of both rows, so read
# the ratio as "what is left through the gateway" and the p50 difference
# as the latency the gateway adds. See bench/README.md.
#
# Env: BENCH_SECONDS (5), BENCH_WARMUP (1), BENCH_THREADS (2),
#      BENCH_CONNECTIONS (8), BENCH_ROUNDS (1), SLUICE_BIN (build/sluice),
#      WRK (wrk), PYTHON (python3), BENCH_KEEP=1 keeps the scratch directory.
set -u

cd "$(dirname "$0")/.." || exit 1
ROOT=$(pwd)

WORK=""  # lib.sh's exit trap removes it; bench_dirs makes it
. "$ROOT/bench/lib.sh"

bench_settings 5 1 8 1
PYTHON=${PYTHON:-python3}
need_tools "$WRK" "$PYTHON" curl luajit
bench_dirs lambda

AK=AKIDSLUICEBENCHEXAMP
SK=sluice/Bench+Secret/Key0123456789abcdefGH
INVOKE_PATH=/2015-03-31/functions/echo/invocations


MOCK_PORT=$(free_port) || exit 1
SLUICE_PORT=$(free_port) || exit 1

# the mock: static keys, no clock-skew check (the direct row replays one
# signature), nothing recorded to disk. Loaded as a module to set
# TCP_NODELAY on its connections: it writes a response's head and body
# separately, and Nagle + delayed ACKs would hold every keep-alive answer
# ~40 ms, for both rows alike.
"$PYTHON" -c '
import sys, importlib.util
spec = importlib.util.spec_from_file_location("mock_faas", sys.argv[1])
m = importlib.util.module_from_spec(spec)
spec.loader.exec_module(m)
m.Handler.disable_nagle_algorithm = True
sys.exit(m.main(sys.argv[2:]))
' "$ROOT/spec/fixtures/mock_faas/mock_faas.py" --platform lambda \
    --port "$MOCK_PORT" --access-key "$AK" --secret-key "$SK" \
    --max-skew 0 --exit-with $$ > "$WORK/mock.log" 2>&1 &
PIDS="$PIDS $!"
i=0
until curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$MOCK_PORT/__mock/health"; do
    i=$((i + 1))
    [ $i -lt 100 ] || { echo "bench: the Lambda mock did not start:" >&2; tail -20 "$WORK/mock.log" >&2; exit 1; }
    sleep 0.1
done

# (a) the signed Invoke request, as a wrk script
DIRECT_SCRIPT=$WORK/direct.lua
if ! luajit - "$MOCK_PORT" "$AK" "$SK" "$INVOKE_PATH" > "$DIRECT_SCRIPT" 2> "$WORK/sign.log" <<'EOF'
package.path = "./?.lua;" .. package.path
local sigv4 = require "spec.fixtures.mock_faas.sigv4"
local port, ak, sk, path = arg[1], arg[2], arg[3], arg[4]
local s = sigv4.sign({
  method = "POST", path = path, query = "",
  headers = { Host = "127.0.0.1:" .. port,
              ["Content-Type"] = "application/json",
              ["X-Amz-Invocation-Type"] = "RequestResponse",
              ["X-Amz-Log-Type"] = "Tail" },
  body = "{}", access_key = ak, secret_key = sk,
  region = "us-east-1", service = "lambda", time = os.time(),
})
print('wrk.method = "POST"')
print(string.format('wrk.path = %q', path))
print('wrk.body = "{}"')
for k, v in pairs(s.headers) do
  print(string.format('wrk.headers[%q] = %q', k, v))
end
EOF
then
    echo "bench: signing failed:" >&2; cat "$WORK/sign.log" >&2; exit 1
fi
# curl replays the same request for the check
CURL_ARGS=$(awk -F'%q|"' '/^wrk.headers/ { printf "-H \"%s: %s\" ", $2, $4 }' "$DIRECT_SCRIPT")
direct_check=$(eval curl -s --max-time 5 -o "$WORK/direct.body" -w '%{http_code}' \
    -X POST --data-binary '{}' $CURL_ARGS "http://127.0.0.1:$MOCK_PORT$INVOKE_PATH")
if [ "$direct_check" != 200 ] || [ "$(cat "$WORK/direct.body")" != "{}" ]; then
    echo "bench: the signed direct call gave $direct_check: $(cat "$WORK/direct.body")" >&2
    exit 1
fi

# (b) the gateway
SLUICE_NOTE=""
SLUICE_OK=""
if [ ! -x "$SLUICE_BIN" ]; then
    SLUICE_NOTE="sluice skipped: $SLUICE_BIN not built (make build/sluice)"
else
    sdir=$WORK/sluice
    mkdir -p "$sdir"
    cat > "$WORK/kong.yml" <<EOF
_format_version: "3.0"
routes:
- name: bench
  paths:
  - /
  plugins:
  - name: aws-lambda
    config:
      function_name: echo
      aws_region: us-east-1
      aws_key: $AK
      aws_secret: $SK
      host: 127.0.0.1
      port: $MOCK_PORT
      disable_https: true
EOF
    cat > "$WORK/sluice.conf" <<EOF
prefix = $sdir
proxy_listen = 127.0.0.1:$SLUICE_PORT
admin_listen = off
database = off
worker_processes = 1
daemon = on
plugins = bundled,aws-lambda
log_level = ${BENCH_SLUICE_LOG_LEVEL:-notice}
proxy_access_log = off
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
        got=$(curl -s --max-time 5 -w ' %{http_code}' "http://127.0.0.1:$SLUICE_PORT/")
        if [ "$got" != "{} 200" ]; then
            SLUICE_NOTE="sluice skipped: GET / gave '$got' (want '{} 200')
$(tail -20 "$sdir/logs/error.log" 2>/dev/null)"
        else
            SLUICE_OK=1
        fi
    fi
    cp "$WORK/sluice.conf" "$WORK/kong.yml" "$RAW/" 2>/dev/null
fi
cp "$DIRECT_SCRIPT" "$RAW/" 2>/dev/null

r=1
while [ "$r" -le "$ROUNDS" ]; do
    run_wrk direct "$MOCK_PORT" "$r" "$DIRECT_SCRIPT"
    [ -n "$SLUICE_OK" ] && run_wrk sluice "$SLUICE_PORT" "$r" ""
    r=$((r + 1))
done
[ -n "$SLUICE_PREFIX" ] && [ -f "$SLUICE_PREFIX/logs/error.log" ] &&
    tail -200 "$SLUICE_PREFIX/logs/error.log" > "$RAW/sluice.error.log"

ROWS="$(median_row direct)
$(median_row sluice)
"
DIRECT_RPS=$(median_row direct | awk '{ print $2 }')
SLUICE_RPS=$(median_row sluice | awk '{ print $2 }')

{
    echo "Sluice aws-lambda bench $STAMP  rev $(git rev-parse --short HEAD 2>/dev/null || echo none)"
    echo "wrk -t$THREADS -c$CONNS -d${SECS}s --latency (warmup ${WARMUP}s), $ROUNDS round(s), median shown; $(nproc) CPUs; 1 worker"
    echo "direct: the signed Invoke call replayed to the Lambda mock (echo, SigV4 verified)"
    echo "sluice: GET / -> aws-lambda (static keys, http, keepalive) -> the same mock"
    echo
    rows_table 8 direct "$DIRECT_RPS" "$ROWS"
    if [ -n "$SLUICE_RPS" ] && [ -n "$DIRECT_RPS" ]; then
        echo
        awk -v a="$SLUICE_RPS" -v b="$DIRECT_RPS" 'BEGIN { if (b > 0) printf "sluice / direct (requests/s): %.2f\n", a / b }'
    fi
    if [ -n "$SLUICE_NOTE" ]; then
        echo
        echo "$SLUICE_NOTE"
    fi
} | tee "$OUT"
cp "$OUT" "$RESULTS/latest-lambda.txt"
echo "bench: results in $OUT (raw wrk output in $RAW/)"
