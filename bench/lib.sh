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
