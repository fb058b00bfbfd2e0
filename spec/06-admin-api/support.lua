-- Shared pieces of the Admin API specs (spec/06-admin-api): a gateway
-- node with its own prefix and ports (database = embedded or off, the
-- my-plugin fixture enabled), requests with JSON, form and multipart
-- bodies, and a poll of the proxy that measures how long a change takes to
-- be served.

local helpers = require "spec.helpers"
local util = require "spec.internal.util"
local cjson = require "cjson.safe"


local _M = {}


_M.FIXTURES = helpers.ROOT .. "/spec/fixtures/custom_plugins/?.lua;"
_M.PLUGINS = "bundled,my-plugin"


-- a store file ready to use (the master bootstraps it too once wired;
-- both are idempotent)
local function bootstrap(conf)
  local ok, db = pcall(require, "sluice.db")
  if not ok then
    return nil, db
  end
  local migrations = require "sluice.db.migrations"
  local s, err = db.open(conf)
  if not s then
    return nil, err
  end
  local bok, berr = migrations.bootstrap(s)
  if bok then
    bok, berr = migrations.up(s)
  end
  s:close()
  if not bok then
    return nil, berr
  end
  return true
end


--- Starts a node. opts: database ("embedded" | "off"), workers (2),
-- declarative_config (table or path), any other kong.conf property.
-- Returns the node: { conf, admin(), proxy(), stop() }.
function _M.start(name, opts)
  opts = opts or {}
  local database = opts.database or "embedded"
  local conf = {
    prefix = helpers.RUN_DIR .. "/admin-" .. name,
    proxy_listen = "127.0.0.1:" .. helpers.get_available_port(),
    admin_listen = "127.0.0.1:" .. helpers.get_available_port(),
    worker_processes = opts.workers or 2,
    log_level = "info",
    plugins = _M.PLUGINS,
    lua_package_path = _M.FIXTURES,
    database = database,
  }
  for k, v in pairs(opts) do
    if k ~= "workers" then
      conf[k] = v
    end
  end
  util.rm_rf(conf.prefix)
  util.mkdir(conf.prefix .. "/logs")
  if database ~= "off" then
    assert(bootstrap(conf))
  end
  -- spec.helpers drops `database` from the conf: the env carries it
  assert(helpers.start_kong(conf, { env = { database = database },
                                    preserve_prefix = true }))
  local node = { conf = conf, database = database }
  node.admin_port = tonumber(conf.admin_listen:match(":(%d+)$"))
  node.proxy_port = tonumber(conf.proxy_listen:match(":(%d+)$"))
  function node.admin(timeout)
    return helpers.http_client("127.0.0.1", node.admin_port, timeout or 5000)
  end
  function node.proxy(timeout)
    return helpers.http_client("127.0.0.1", node.proxy_port, timeout or 5000)
  end
  function node.stop()
    helpers.stop_kong(conf.prefix)
  end
  function node.restart()
    helpers.stop_kong(conf.prefix, true)
    assert(helpers.start_kong(conf, { env = { database = database },
                                      preserve_prefix = true }))
  end
  return node
end


--- multipart/form-data body from an array of { name, value[, ctype] }
-- (names may repeat). Returns body, content_type.
function _M.multipart(fields)
  local b = "sluice-admin-spec-" .. util.next_id("boundary")
  local parts = {}
  for _, f in ipairs(fields) do
    local head = 'Content-Disposition: form-data; name="' .. f[1] .. '"'
    if f[3] then
      head = head .. "\r\nContent-Type: " .. f[3]
    end
    parts[#parts + 1] = "--" .. b .. "\r\n" .. head .. "\r\n\r\n"
                        .. tostring(f[2]) .. "\r\n"
  end
  parts[#parts + 1] = "--" .. b .. "--\r\n"
  return table.concat(parts), "multipart/form-data; boundary=" .. b
end


-- pairs -> form fields in a stable order for multipart
local function fields_of(body)
  local keys = {}
  for k in pairs(body) do
    keys[#keys + 1] = k
  end
  table.sort(keys)
  local fields = {}
  for _, k in ipairs(keys) do
    local v = body[k]
    if type(v) == "table" then
      for _, x in ipairs(v) do
        fields[#fields + 1] = { k, x }
      end
    else
      fields[#fields + 1] = { k, v }
    end
  end
  return fields
end


--- One request. kind: "json" (default for tables), "form", "multipart"
-- (body: a table of name -> value or array of values) or a raw string
-- with `ctype`. Returns status, decoded JSON body (or the raw text), res.
function _M.request(client, method, path, body, kind, headers)
  local h = {}
  for k, v in pairs(headers or {}) do
    h[k] = v
  end
  local raw = body
  if type(body) == "table" then
    if kind == "form" then
      h["Content-Type"] = "application/x-www-form-urlencoded"
    elseif kind == "multipart" then
      local ct
      raw, ct = _M.multipart(fields_of(body))
      h["Content-Type"] = ct
    else
      h["Content-Type"] = "application/json"
      raw = assert(cjson.encode(body))
    end
  end
  local res = assert(client:send({ method = method, path = path,
                                   body = raw, headers = h }))
  local text = res:read_body() or ""
  local decoded = cjson.decode(text)
  if decoded == nil then
    decoded = text
  end
  return res.status, decoded, res, text
end


--- The same request in each body encoding: calls fn(kind) for "json",
-- "form", "multipart".
_M.KINDS = { "json", "form", "multipart" }


--- Polls GET `path` on the proxy until `status` (fresh connection each
-- time so that every worker may answer). Returns seconds taken.
function _M.time_until_served(node, path, status, t0, timeout, headers)
  t0 = t0 or util.now()
  local ok = pcall(helpers.wait_until, function()
    local c = node.proxy(2000)
    local res = c:send({ method = "GET", path = path, headers = headers })
    local st = res and res.status
    if res then
      res:read_body()
    end
    c:close()
    return st == status
  end, timeout or 5, 0.02)
  if not ok then
    return nil
  end
  return util.now() - t0
end


--- Polls until `n` requests in a row on fresh connections (spread over
-- the workers) all satisfy want(status, headers) (`headers`: of the
-- requests). Returns seconds taken
-- since t0, or nil after `timeout`.
function _M.time_until_all(node, path, want, t0, timeout, n, headers)
  t0 = t0 or util.now()
  n = n or 8
  local ok = pcall(helpers.wait_until, function()
    for _ = 1, n do
      local c = node.proxy(2000)
      local res = c:send({ method = "GET", path = path, headers = headers })
      if res then
        res:read_body()
      end
      c:close()
      if not res or not want(res.status, res.headers) then
        return false
      end
    end
    return true
  end, timeout or 5, 0.02)
  if not ok then
    return nil
  end
  return util.now() - t0
end


--- Asks `n` fresh connections and collects the statuses.
function _M.statuses(node, path, n, headers)
  local out = {}
  for i = 1, n do
    local c = node.proxy(2000)
    local res = c:send({ method = "GET", path = path, headers = headers })
    out[i] = res and res.status
    if res then
      res:read_body()
    end
    c:close()
  end
  return out
end


return _M
