-- Shared pieces of the store specs (spec/07-stores): gateway confs for each
-- store, the CLI, probes for what other parts of issue #5 provide yet, and
-- a poll of the proxy that measures how long a change takes to be served.

local helpers = require "spec.helpers"
local util = require "spec.internal.util"
local cjson = require "cjson"
local db = require "sluice.db"
local migrations = require "sluice.db.migrations"


local _M = {}


--- A conf table for a node: its own prefix and ports; `store` is
-- "embedded" or a started spec.internal.postgres server.
function _M.node_conf(name, store, extra)
  local conf = {
    prefix = helpers.RUN_DIR .. "/" .. name,
    proxy_listen = "127.0.0.1:" .. helpers.get_available_port(),
    admin_listen = "127.0.0.1:" .. helpers.get_available_port(),
    worker_processes = 2,
    log_level = "info",
  }
  if type(store) == "table" then
    conf.database = "postgres"
    for k, v in pairs(store.conf) do
      conf[k] = v
    end
  else
    conf.database = "embedded"
  end
  for k, v in pairs(extra or {}) do
    conf[k] = v
  end
  return conf
end


--- spec.helpers.start_kong drops a `database` key (Kong keys without
-- meaning for DB-less Sluice): it goes through KONG_DATABASE instead.
function _M.start(conf, preserve_prefix)
  return helpers.start_kong(conf, { env = { database = conf.database },
                                    preserve_prefix = preserve_prefix })
end


function _M.port(listen)
  return tonumber(listen:match(":(%d+)$"))
end


--- The store the node with `conf` uses, opened from this process.
function _M.store(conf)
  return assert(db.open(conf))
end


--- Makes the node's store usable (bootstrap + up; both idempotent).
function _M.bootstrap(conf)
  local s = _M.store(conf)
  assert(migrations.bootstrap(s))
  assert(migrations.up(s))
  s:close()
end


--- Runs `sluice <args>` with `conf` written to a file.
-- @return ok, stdout, stderr, code
function _M.cli(args, conf, stdin)
  local path = helpers.write_conf(conf)
  local cmd = args .. " -c " .. util.quote(path)
  if conf.prefix then
    cmd = cmd .. " -p " .. util.quote(conf.prefix)
  end
  if stdin then
    local input = util.tmpname("stdin")
    util.write_file(input, stdin)
    return util.exec(util.quote(helpers.bin()) .. " " .. cmd .. " < "
                     .. util.quote(input), { KONG_DATABASE = conf.database },
                     30)
  end
  return helpers.kong_exec(cmd, { KONG_DATABASE = conf.database })
end


local cli_state


--- Inside an `it`: marks it pending while the C command line does not
-- route the commands to sluice.db.cli (probed once per file).
function _M.need_cli(pending)
  if cli_state == nil then
    local ok, why = _M.cli_ready()
    cli_state = ok and true or why
  end
  if cli_state ~= true then
    error(cli_state, 2)
  end
end


--- nil, reason while `sluice migrations` / `config db_import` are not
-- routed to lua/sluice/db/cli.lua by the C command line.
function _M.cli_ready()
  local _, out, err = helpers.kong_exec("migrations list -c /dev/null")
  local text = out .. err
  if text:find("unknown command", 1, true) then
    return nil, "WAITS: `sluice migrations` in the C command line "
                .. "(core/main.c -> sluice.db.cli)"
  end
  _, out, err = helpers.kong_exec("config db_export -c /dev/null")
  text = out .. err
  if text:find("unknown config command", 1, true) then
    return nil, "WAITS: `sluice config db_import/db_export` in the C "
                .. "command line (core/main.c -> sluice.db.cli)"
  end
  return true
end


--- nil, reason while the node's Admin API does not answer GET /services.
function _M.admin_ready(conf)
  local ok, client = pcall(helpers.http_client, "127.0.0.1",
                           _M.port(conf.admin_listen), 2000)
  if not ok then
    return nil, "WAITS: Admin API (admin port not answering)"
  end
  local res = client:get("/services")
  local status = res and res.status
  local body = res and res:read_body()
  client:close()
  if status ~= 200 or not (body or ""):find("\"data\"", 1, true) then
    return nil, "WAITS: Admin API (GET /services answers "
                .. tostring(status) .. ")"
  end
  return true
end


--- A request through the node's proxy on a new connection.
-- @return status, body, headers
function _M.get(conf, path, headers)
  local ok, client = pcall(helpers.http_client, "127.0.0.1",
                           _M.port(conf.proxy_listen), 2000)
  if not ok then
    return nil, tostring(client)
  end
  local res, err = client:get(path, { headers = headers })
  if not res then
    client:close()
    return nil, err
  end
  local body = res:read_body()
  client:close()
  return res.status, body, res.headers
end


--- Seconds from `t0` until `n` consecutive new-connection requests to
-- `path` all answer `status` (so every worker has the change); raises after
-- `timeout`.
function _M.time_until_served(conf, path, status, t0, timeout, n)
  n = n or 8
  local deadline = t0 + (timeout or 5)
  while true do
    local all = true
    for _ = 1, n do
      if _M.get(conf, path) ~= status then
        all = false
        break
      end
    end
    if all then
      return util.now() - t0
    end
    if util.now() > deadline then
      error(string.format("%s did not answer %d on every worker within "
                          .. "%.1f s (last: %s)", path, status,
                          timeout or 5, tostring((_M.get(conf, path)))), 2)
    end
    util.sleep(0.02)
  end
end


local seq = 0


--- A service (to `upstream_url`) and a route on `path`, written to the
-- store in one transaction. Returns the service and route rows.
function _M.write_route(s, path, upstream_url, name)
  seq = seq + 1
  name = name or ("svc" .. seq)
  local uuid = require "sluice.uuid"
  local host, port = upstream_url:match("^https?://([^:/]+):?(%d*)")
  local service = {
    id = uuid.generate_v4(),
    name = name,
    protocol = "http",
    host = host,
    port = tonumber(port) or 80,
    path = "/",
  }
  local route = {
    id = uuid.generate_v4(),
    name = name .. "-route",
    paths = { path },
    service = { id = service.id },
  }
  assert(s:tx(function(st)
    assert(st:insert("services", service, db.uniques("services", service)))
    assert(st:insert("routes", route, db.uniques("routes", route)))
    return true
  end))
  return service, route
end


function _M.count(text, needle)
  local n = 0
  local pos = 1
  while true do
    local i = text:find(needle, pos, true)
    if not i then
      return n
    end
    n = n + 1
    pos = i + #needle
  end
end


_M.cjson = cjson


return _M
