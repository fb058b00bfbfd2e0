#!/usr/bin/env bash
# Sluice configuration propagation benchmark: the time from an Admin API
# write to the change being served by the proxy.
#
#   embedded   one node, database = embedded, 2 workers: write through its
#              Admin API, poll its proxy
#   postgres   two nodes on one PostgreSQL (Debian's server binaries, a
#              throwaway cluster on loopback): write through node A, poll
#              node B; skipped when PostgreSQL is not installed
#
# Each round creates a service (its upstream is the node's own admin
# listener, so nothing else runs) and then, starting the clock, a route on a
# new path; two times are taken: "first" (the first 200 through the proxy)
# and "all" (8 consecutive requests on new connections all answer 200, so
# every worker has it). The Admin API must answer; when it does not, the
# write goes straight into the store (sluice.db from LuaJIT) and the row
# says "via store". Prints the median, min and max of N rounds and writes
# them to bench/results/<stamp>-propagation.txt (and
# latest-propagation.txt).
#
# Env: BENCH_ROUNDS (20), BENCH_WORKERS (2), SLUICE_BIN (build/sluice),
#      BENCH_KEEP=1 keeps the scratch directory.
set -u

cd "$(dirname "$0")/.." || exit 1
ROOT=$(pwd)

ROUNDS=${BENCH_ROUNDS:-20}
WORKERS=${BENCH_WORKERS:-2}
SLUICE_BIN=${SLUICE_BIN:-build/sluice}
case $SLUICE_BIN in /*) ;; *) SLUICE_BIN=$ROOT/$SLUICE_BIN ;; esac

[ -x "$SLUICE_BIN" ] || { echo "bench: $SLUICE_BIN not built (make)" >&2; exit 1; }
command -v luajit >/dev/null 2>&1 || { echo "bench: luajit not found" >&2; exit 1; }

WORK=$(mktemp -d /tmp/sluice-bench.XXXXXX) || exit 1
chmod 755 "$WORK"
STAMP=$(date +%Y%m%d-%H%M%S)
RESULTS=$ROOT/bench/results
mkdir -p "$RESULTS"
OUT=$RESULTS/$STAMP-propagation.txt

. "$ROOT/bench/lib.sh"

PREFIXES=""
PG_DATA=""
PG_BIN=""
PG_RUNAS=""

as_pg() {
    if [ -n "$PG_RUNAS" ]; then runuser -u "$PG_RUNAS" -- "$@"; else "$@"; fi
}

prop_cleanup() {
    for p in $PREFIXES; do
        timeout 10 "$SLUICE_BIN" stop -p "$p" >/dev/null 2>&1
    done
    if [ -n "$PG_DATA" ]; then
        as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" -m fast -w -t 20 stop >/dev/null 2>&1
    fi
    cleanup
}
trap prop_cleanup EXIT


# The measuring side: LuaJIT + luasocket (ms clock, raw HTTP/1.1).
cat > "$WORK/measure.lua" <<'EOF'
-- measure.lua ROOT MODE ADMIN_PORT PROXY_PORT ROUNDS STORE_CONF_JSON
local root, mode, admin_port, proxy_port, rounds, store_conf =
  arg[1], arg[2], tonumber(arg[3]), tonumber(arg[4]), tonumber(arg[5]), arg[6]
package.path = root .. "/lua/?.lua;" .. root .. "/lua/?/init.lua;"
               .. package.path
local socket = require "socket"
local cjson = require "cjson"

local function request(port, method, path, body)
  local c = socket.tcp()
  c:settimeout(2)
  if not c:connect("127.0.0.1", port) then
    return nil
  end
  local req = method .. " " .. path .. " HTTP/1.1\r\nHost: bench\r\n"
              .. "Connection: close\r\n"
  if body then
    req = req .. "Content-Type: application/json\r\nContent-Length: "
          .. #body .. "\r\n\r\n" .. body
  else
    req = req .. "\r\n"
  end
  c:send(req)
  local line = c:receive("*l")
  local rest = c:receive("*a")
  c:close()
  local status = line and tonumber(line:match("^HTTP/1%.%d (%d+)"))
  return status, rest
end

local store
local function via_admin()
  local s = request(admin_port, "GET", "/services")
  return s == 200
end

local use_admin = via_admin()
if not use_admin then
  local db = require "sluice.db"
  store = assert(db.open(cjson.decode(store_conf)))
end

local firsts, alls = {}, {}
math.randomseed(os.time())
for i = 1, rounds do
  -- a random phase against the workers' 0.5 s poll timers, so rounds do
  -- not all start right after a poll
  socket.sleep(math.random() * 0.5)
  local name = string.format("prop-%s-%d-%d", mode, os.time(), i)
  local path = "/" .. name
  local service = { name = name, url = "http://127.0.0.1:" .. admin_port }
  local t0
  if use_admin then
    local s, body = request(admin_port, "POST", "/services",
                            cjson.encode(service))
    assert(s == 201, "POST /services: " .. tostring(s) .. " " .. tostring(body))
    t0 = socket.gettime()
    s, body = request(admin_port, "POST", "/services/" .. name .. "/routes",
                      cjson.encode({ paths = { path } }))
    assert(s == 201, "POST routes: " .. tostring(s) .. " " .. tostring(body))
  else
    local db = require "sluice.db"
    local uuid = require "sluice.uuid"
    local srow = { id = uuid.generate_v4(), name = name, protocol = "http",
                   host = "127.0.0.1", port = admin_port, path = "/" }
    local rrow = { id = uuid.generate_v4(), name = name, paths = { path },
                   service = { id = srow.id } }
    assert(store:insert("services", srow, db.uniques("services", srow)))
    t0 = socket.gettime()
    assert(store:insert("routes", rrow, db.uniques("routes", rrow)))
  end
  local first
  local streak = 0
  local deadline = t0 + 10
  while streak < 8 do
    local s = request(proxy_port, "GET", path)
    local now = socket.gettime()
    if s == 200 then
      first = first or now
      streak = streak + 1
    else
      streak = 0
      socket.sleep(0.002)
    end
    if now > deadline then
      error("round " .. i .. ": not served after 10 s")
    end
  end
  firsts[#firsts + 1] = (first - t0) * 1000
  alls[#alls + 1] = (socket.gettime() - t0) * 1000
end

local function stats(t)
  table.sort(t)
  local n = #t
  local median = n % 2 == 1 and t[(n + 1) / 2] or (t[n / 2] + t[n / 2 + 1]) / 2
  return median, t[1], t[n]
end
local fm, fmin, fmax = stats(firsts)
local am, amin, amax = stats(alls)
print(string.format("%-10s %-11s %6d %9.1f %9.1f %9.1f %9.1f %9.1f %9.1f",
                    mode, use_admin and "admin" or "store", rounds,
                    fm, fmin, fmax, am, amin, amax))
EOF


# start_node NAME PROXY ADMIN DATABASE [extra conf lines]
start_node() {
    local dir=$WORK/$1
    mkdir -p "$dir"
    cat > "$dir/sluice.conf" <<EOF
prefix = $dir
database = $4
proxy_listen = 127.0.0.1:$2
admin_listen = 127.0.0.1:$3
worker_processes = $WORKERS
daemon = on
log_level = notice
proxy_access_log = off
${5:-}
EOF
    PREFIXES="$PREFIXES $dir"
    if ! timeout 30 "$SLUICE_BIN" start -c "$dir/sluice.conf" -p "$dir" \
            > "$dir/start.log" 2>&1; then
        echo "bench: node $1 did not start:" >&2
        tail -20 "$dir/start.log" "$dir/logs/error.log" >&2 2>/dev/null
        return 1
    fi
    local spid
    spid=$(cat "$dir/pids/sluice.pid" 2>/dev/null)
    [ -n "$spid" ] && PIDS="$PIDS $spid"
    return 0
}

# bootstrap CONF_JSON: bootstrap + up through the CLI, else through LuaJIT
bootstrap() {
    luajit -e "
      package.path = '$ROOT/lua/?.lua;$ROOT/lua/?/init.lua;' .. package.path
      local m = require 'sluice.db.migrations'
      local s = assert(require('sluice.db').open(require('cjson').decode([[$1]])))
      assert(m.bootstrap(s)); assert(m.up(s)); s:close()"
}


HEADER=$(printf '%-10s %-11s %6s %9s %9s %9s %9s %9s %9s' \
         store write rounds "first p50" min max "all p50" min max)
ROWS=""
NOTES=""

# -- embedded -----------------------------------------------------------------
P=$(free_port) && A=$(free_port) || exit 1
EMB_CONF="{\"database\":\"embedded\",\"prefix\":\"$WORK/embedded\"}"
if start_node embedded "$P" "$A" embedded; then
    bootstrap "$EMB_CONF"
    echo "bench: embedded, $ROUNDS rounds"
    row=$(luajit "$WORK/measure.lua" "$ROOT" embedded "$A" "$P" "$ROUNDS" \
          "$EMB_CONF" 2> "$WORK/embedded.err") || {
        NOTES="$NOTES
embedded failed: $(tail -5 "$WORK/embedded.err")"; row=""; }
    [ -n "$row" ] && ROWS="$ROWS
$row"
else
    NOTES="$NOTES
embedded skipped: the node did not start"
fi

# -- postgres -----------------------------------------------------------------
PG_BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
if [ -z "$PG_BIN" ] || [ ! -x "$PG_BIN/initdb" ]; then
    NOTES="$NOTES
postgres skipped: no /usr/lib/postgresql/*/bin (apt-get install postgresql)"
else
    if [ "$(id -u)" = 0 ]; then
        PG_RUNAS=postgres
        id -u postgres >/dev/null 2>&1 || PG_RUNAS=nobody
    fi
    PGDIR=$WORK/pg
    mkdir -p "$PGDIR/sock"
    echo "bench-pw" > "$PGDIR/pw"
    [ -n "$PG_RUNAS" ] && chown -R "$PG_RUNAS" "$PGDIR"
    PGPORT=$(free_port) || exit 1
    if as_pg "$PG_BIN/initdb" -D "$PGDIR/data" -U kong --pwfile="$PGDIR/pw" \
            --auth-local=trust --auth-host=scram-sha-256 -E UTF8 --no-locale \
            --no-sync > "$WORK/initdb.log" 2>&1 &&
       PG_DATA=$PGDIR/data &&
       as_pg "$PG_BIN/pg_ctl" -D "$PGDIR/data" -l "$PGDIR/pg.log" -w -t 20 \
            -o "-k $PGDIR/sock -p $PGPORT -c listen_addresses=127.0.0.1" \
            start > "$WORK/pgctl.log" 2>&1 &&
       as_pg "$PG_BIN/psql" -X -q -h "$PGDIR/sock" -p "$PGPORT" -U kong \
            -d postgres -c "CREATE DATABASE kong" > /dev/null 2>&1
    then
        PG_LINES="pg_host = 127.0.0.1
pg_port = $PGPORT
pg_user = kong
pg_password = bench-pw
pg_database = kong"
        PG_CONF="{\"database\":\"postgres\",\"pg_host\":\"127.0.0.1\",\"pg_port\":$PGPORT,\"pg_user\":\"kong\",\"pg_password\":\"bench-pw\",\"pg_database\":\"kong\"}"
        bootstrap "$PG_CONF"
        PA=$(free_port) && AA=$(free_port) && PB=$(free_port) && AB=$(free_port) || exit 1
        if start_node pg-a "$PA" "$AA" postgres "$PG_LINES" &&
           start_node pg-b "$PB" "$AB" postgres "$PG_LINES"; then
            echo "bench: postgres (write on A, poll B), $ROUNDS rounds"
            row=$(luajit "$WORK/measure.lua" "$ROOT" postgres "$AA" "$PB" \
                  "$ROUNDS" "$PG_CONF" 2> "$WORK/postgres.err") || {
                NOTES="$NOTES
postgres failed: $(tail -5 "$WORK/postgres.err")"; row=""; }
            [ -n "$row" ] && ROWS="$ROWS
$row"
        else
            NOTES="$NOTES
postgres skipped: a node did not start"
        fi
    else
        NOTES="$NOTES
postgres skipped: the cluster did not start: $(tail -3 "$WORK/initdb.log" "$WORK/pgctl.log" 2>/dev/null)"
    fi
fi

{
    echo "config propagation, $(date -u +%Y-%m-%dT%H:%M:%SZ), $WORKERS workers per node, ms"
    echo "(first: first 200 through the proxy; all: 8 in a row on new connections)"
    echo "$HEADER"
    echo "${ROWS#
}"
    [ -n "$NOTES" ] && echo "${NOTES#
}"
} | tee "$OUT"
cp "$OUT" "$RESULTS/latest-propagation.txt"
