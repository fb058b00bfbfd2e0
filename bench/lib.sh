# Shared by the bench scripts (sourced): process bookkeeping, cleanup on exit, free ports.
# Expects WORK, SLUICE_BIN set by the caller; callers add pids to PIDS.

PIDS=""
SLUICE_PREFIX=""

alive() { [ -n "$1" ] && kill -0 "$1" 2>/dev/null; }

cleanup() {
    if [ -n "$SLUICE_PREFIX" ] && [ -x "$SLUICE_BIN" ]; then
        timeout 10 "$SLUICE_BIN" stop -p "$SLUICE_PREFIX" >/dev/null 2>&1
    fi
    for p in $PIDS; do alive "$p" && kill -TERM "$p" 2>/dev/null; done
    for p in $PIDS; do
        i=0
        while alive "$p" && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
        alive "$p" && kill -KILL "$p" 2>/dev/null
    done
    if [ -z "${BENCH_KEEP:-}" ]; then rm -rf "$WORK"; else echo "bench: kept $WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# A free loopback port: bind port 0 (LuaJIT + luasocket), else probe.
USED=" "
free_port() {
    local p i
    for i in 1 2 3 4 5 6 7 8 9 10; do
        p=$(luajit -e 'local s = require("socket").bind("127.0.0.1", 0)
                       local _, p = s:getsockname() print(p) s:close()' 2>/dev/null)
        if [ -z "$p" ]; then
            p=$((20000 + RANDOM % 40000))
            (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null && continue
        fi
        case $USED in *" $p "*) continue ;; esac
        USED="$USED$p "
        echo "$p"
        return 0
    done
    echo "bench: no free port" >&2
    return 1
}

# wait_http PORT [HEADER]: until GET / answers (10 s at most).
wait_http() {
    local i=0
    while [ $i -lt 100 ]; do
        curl -s -o /dev/null --max-time 1 ${2:+-H "$2"} "http://127.0.0.1:$1/" && return 0
        sleep 0.1
        i=$((i + 1))
    done
    return 1
}

# start_nginx NAME BODY(http block content) [MAIN(main context lines)]
start_nginx() {
    local dir=$WORK/$1
    mkdir -p "$dir/tmp"
    cat > "$dir/nginx.conf" <<EOF
${3:-}worker_processes 1;
daemon on;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
worker_rlimit_nofile 65535;
events { worker_connections 16384; }
http {
    access_log off;
    client_body_temp_path $dir/tmp/body;
    proxy_temp_path $dir/tmp/proxy;
    fastcgi_temp_path $dir/tmp/fastcgi;
    uwsgi_temp_path $dir/tmp/uwsgi;
    scgi_temp_path $dir/tmp/scgi;
    keepalive_requests 1000000;
    keepalive_timeout 60s;
$2
}
EOF
    if ! timeout 20 "$NGINX" -p "$dir" -c "$dir/nginx.conf" -e "$dir/error.log"; then
        echo "bench: nginx '$1' failed to start:" >&2
        tail -20 "$dir/error.log" >&2
        return 1
    fi
    local i=0
    while [ ! -s "$dir/nginx.pid" ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
    PIDS="$PIDS $(cat "$dir/nginx.pid")"
}

# to_ms VALUE (wrk units: us, ms, s)
to_ms() {
    awk -v v="$1" 'BEGIN {
        if (v ~ /us$/) { sub(/us$/, "", v); printf "%.3f", v / 1000 }
        else if (v ~ /ms$/) { sub(/ms$/, "", v); printf "%.3f", v }
        else if (v ~ /m$/) { sub(/m$/, "", v); printf "%.3f", v * 60000 }
        else if (v ~ /s$/) { sub(/s$/, "", v); printf "%.3f", v * 1000 }
        else printf "%s", "-" }'
}

# median_row NAME: the round with the median requests/s, as "NAME rps p50 p99 non2xx sockerr"
median_row() {
    [ -f "$RAW/$1.rows" ] || return 0
    sort -n -k1,1 "$RAW/$1.rows" | awk -v n="$1" '{ r[NR] = $0 } END { if (NR) print n, r[int((NR + 1) / 2)] }'
}

# bench_settings SECS WARMUP CONNS ROUNDS: SECS, WARMUP, THREADS, CONNS, ROUNDS from
# BENCH_SECONDS, BENCH_WARMUP, BENCH_THREADS (2), BENCH_CONNECTIONS, BENCH_ROUNDS, else
# these defaults; SLUICE_BIN (build/sluice) made absolute under ROOT; WRK (wrk).
bench_settings() {
    SECS=${BENCH_SECONDS:-$1}
    WARMUP=${BENCH_WARMUP:-$2}
    THREADS=${BENCH_THREADS:-2}
    CONNS=${BENCH_CONNECTIONS:-$3}
    ROUNDS=${BENCH_ROUNDS:-$4}
    SLUICE_BIN=${SLUICE_BIN:-build/sluice}
    case $SLUICE_BIN in /*) ;; *) SLUICE_BIN=$ROOT/$SLUICE_BIN ;; esac
    WRK=${WRK:-wrk}
}

# need_tools TOOL...: exits naming the first one not on PATH.
need_tools() {
    local tool
    for tool in "$@"; do
        command -v "$tool" >/dev/null 2>&1 || { echo "bench: '$tool' not found" >&2; exit 1; }
    done
}

# bench_dirs NAME: WORK (scratch, removed on exit), STAMP, RESULTS, RAW
# (bench/results/<stamp>-NAME/, made) and OUT (bench/results/<stamp>-NAME.txt).
bench_dirs() {
    WORK=$(mktemp -d /tmp/sluice-bench.XXXXXX) || exit 1
    STAMP=$(date +%Y%m%d-%H%M%S)
    RESULTS=$ROOT/bench/results
    RAW=$RESULTS/$STAMP-$1
    mkdir -p "$RAW"
    OUT=$RESULTS/$STAMP-$1.txt
}

# run_wrk NAME PORT ROUND [SCRIPT] [NOTE]: one measurement of GET / (wrk, with the
# wrk Lua SCRIPT if given; NOTE is added to the progress line), appended to
# $RAW/NAME.rows as "rps p50 p99 non2xx sockerr". Uses SECS, WARMUP, THREADS, CONNS,
# ROUNDS, WRK.
run_wrk() {
    local name=$1 port=$2 round=$3 script=${4:-} note=${5:-} url="http://127.0.0.1:$2/"
    local raw=$RAW/$name.$round.wrk
    echo "bench: $name (round $round/$ROUNDS): warmup ${WARMUP}s, then ${SECS}s (wrk -t$THREADS -c$CONNS$note)"
    if [ "$WARMUP" != 0 ]; then
        timeout $((WARMUP + 20)) "$WRK" -t"$THREADS" -c"$CONNS" -d"${WARMUP}s" \
            ${script:+-s "$script"} "$url" >/dev/null 2>&1
    fi
    timeout $((SECS + 30)) "$WRK" -t"$THREADS" -c"$CONNS" -d"${SECS}s" --latency \
        ${script:+-s "$script"} "$url" > "$raw" 2>&1
    local rps p50 p99 non2xx sockerr
    rps=$(awk '/^Requests\/sec:/ { print $2 }' "$raw")
    p50=$(to_ms "$(awk '$1 == "50%" { print $2; exit }' "$raw")")
    p99=$(to_ms "$(awk '$1 == "99%" { print $2; exit }' "$raw")")
    non2xx=$(awk '/Non-2xx or 3xx responses:/ { print $NF }' "$raw")
    sockerr=$(awk '/Socket errors:/ { gsub(/,/, ""); print $4 + $6 + $8 + $10 }' "$raw")
    [ -n "$rps" ] || { echo "bench: $name: wrk gave no result:" >&2; tail -5 "$raw" >&2; rps=0; }
    echo "${rps:-0} ${p50:--} ${p99:--} ${non2xx:-0} ${sockerr:-0}" >> "$RAW/$name.rows"
}

# rows_table WIDTH LABEL BASE_RPS ROWS: the table of median rows ("name rps p50 p99
# non2xx sockerr" a line), names padded to WIDTH, the last column each row's
# requests/s over BASE_RPS, headed "vs LABEL".
rows_table() {
    local fmt="%-$1s %12s %10s %10s %8s %9s %9s\n" base=$3
    printf "$fmt" name "requests/s" "p50 ms" "p99 ms" non2xx sockerr "vs $2"
    printf '%s' "$4" | while read -r name rps p50 p99 non2xx sockerr; do
        [ -n "$name" ] || continue
        ratio=$(awk -v a="$rps" -v b="${base:-0}" 'BEGIN { if (b > 0) printf "%.2f", a / b; else printf "-" }')
        printf "$fmt" "$name" "$rps" "$p50" "$p99" "$non2xx" "$sockerr" "$ratio"
    done
}
