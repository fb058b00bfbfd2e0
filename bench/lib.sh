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
