-- Sluice's spec.helpers: Kong's names (Kong spec/helpers.lua) over Sluice's
-- CLI. Requiring it also registers the luassert extensions of
-- spec/internal/asserts.lua.
--
--   helpers.test_conf                 kong.conf defaults for this run
--   helpers.start_kong(conf, opts)    true | nil, err
--   helpers.stop_kong(prefix, preserve_prefix)
--   helpers.kong_exec(cmd, env, timeout)   ok, stdout, stderr, exit_code
--   helpers.proxy_client(timeout, port), helpers.admin_client(...),
--   helpers.proxy_ssl_client(timeout, sni, port),
--   helpers.http_client(host, port, timeout) or http_client{...}
--   helpers.start_mock_upstream(opts) {host, port, ssl_port, url, stop}
--   helpers.tcp_server(port, opts)     raw scripted TCP peer
--   helpers.wait_until, get_available_port, get_pid, pid_alive,
--   helpers.clean_logfile, helpers.file.read, helpers.make_yaml_file
--   helpers.get_db_utils(strategy) -> bp, db (in-memory, DB-less: the
--   entities inserted become the declarative config of the next start)
--
-- Everything is bounded by timeouts; processes started here are tracked by
-- PID and a watchdog kills the leftovers when busted exits.

local cjson = require "cjson"
local lyaml = require "lyaml"
local util = require "spec.internal.util"
local http_client = require "spec.internal.http_client"
local mock_upstream = require "spec.internal.mock_upstream"
local asserts = require "spec.internal.asserts"
local blueprints = require "spec.internal.blueprints"


local os_getenv = os.getenv
local tonumber = tonumber
local tostring = tostring
local type = type
local pairs = pairs
local ipairs = ipairs
local error = error
local pcall = pcall
local assert = assert
local string_format = string.format
local string_match = string.match
local string_upper = string.upper
local string_find = string.find
local table_concat = table.concat
local table_sort = table.sort


local helpers = {}


local ROOT = util.ROOT
local RUN_DIR = util.RUN_DIR
local START_TIMEOUT = 10
local STOP_TIMEOUT = 10
local CMD_TIMEOUT = 30


helpers.ROOT = ROOT
helpers.RUN_DIR = RUN_DIR


--- The gateway binary: $SLUICE_BIN (relative paths from the repo root),
-- else build/sluice.
function helpers.bin()
  local bin = os_getenv("SLUICE_BIN")
  if not bin or bin == "" then
    return ROOT .. "/build/sluice"
  end
  if bin:sub(1, 1) ~= "/" and string_find(bin, "/", 1, true) then
    return ROOT .. "/" .. bin
  end
  return bin
end


-- Small utilities ----------------------------------------------------------


helpers.get_available_port = util.get_available_port
helpers.wait_until = util.wait_until
helpers.pid_alive = util.pid_alive
helpers.sleep = util.sleep
helpers.now = util.now


--- Like wait_until, for a function that raises (assertions) until ready.
function helpers.pwait_until(fn, timeout, step)
  return util.wait_until(function()
    fn()
    return true
  end, timeout, step)
end


helpers.file = {
  read = util.read_file,
  write = util.write_file,
  exists = util.exists,
  delete = function(path)
    return os.remove(path)
  end,
}


function helpers.unindent(s)
  local indent = string_match(s, "^\n?([ \t]*)")
  s = s:gsub("^\n", "")
  if indent and #indent > 0 then
    s = ("\n" .. s):gsub("\n" .. indent, "\n"):sub(2)
  end
  return s
end


-- Configuration -----------------------------------------------------------


local PROXY_PORT = util.get_available_port()
local ADMIN_PORT = util.get_available_port()


helpers.test_conf = {
  prefix = RUN_DIR .. "/servroot",
  proxy_listen = "127.0.0.1:" .. PROXY_PORT,
  admin_listen = "127.0.0.1:" .. ADMIN_PORT,
  worker_processes = 1,
  log_level = "debug",
}


local function listen_addr(value, want_ssl)
  if type(value) ~= "string" or value == "off" then
    return nil
  end
  for entry in value:gmatch("[^,]+") do
    local addr, flags = string_match(entry, "^%s*(%S+)%s*(.-)%s*$")
    local is_ssl = flags and string_find(" " .. flags .. " ", " ssl ", 1,
                                         true) ~= nil
    if addr and is_ssl == (want_ssl == true) then
      local host, port = string_match(addr, "^%[?(.-)%]?:(%d+)$")
      if not host then
        port = string_match(addr, "^(%d+)$")
        host = "127.0.0.1"
      end
      if host == "0.0.0.0" or host == "*" or host == "" then
        host = "127.0.0.1"
      elseif host == "::" then
        host = "::1"
      end
      return host, tonumber(port)
    end
  end
  return nil
end


local running = {}   -- prefix -> the conf it was started with
local last_started   -- the conf of the last start_kong()


-- The conf of the gateway at `prefix`, else of the default prefix, else of
-- the last one started, else test_conf.
local function current_conf(prefix)
  if prefix then
    return running[prefix] or helpers.test_conf
  end
  return running[helpers.test_conf.prefix] or last_started
         or helpers.test_conf
end


function helpers.get_proxy_ip(ssl)
  return (listen_addr(current_conf().proxy_listen, ssl))
end


function helpers.get_proxy_port(ssl)
  local _, port = listen_addr(current_conf().proxy_listen, ssl)
  return port
end


function helpers.get_admin_ip()
  return (listen_addr(current_conf().admin_listen, false))
end


function helpers.get_admin_port()
  local _, port = listen_addr(current_conf().admin_listen, false)
  return port
end


local function conf_value(v)
  if v == true then
    return "on"
  elseif v == false then
    return "off"
  elseif type(v) == "table" then
    local parts = {}
    for i, x in ipairs(v) do
      parts[i] = tostring(x)
    end
    return table_concat(parts, ",")
  end
  return tostring(v)
end


-- Blueprints (DB-less) ---------------------------------------------------


blueprints.default_upstream = function()
  return helpers.mock_upstream_host or "127.0.0.1",
         helpers.mock_upstream_port or 15555
end


--- Kong's get_db_utils for a DB-less gateway: clears the in-memory store
-- and returns bp, db (see spec/internal/blueprints.lua). The arguments
-- (strategy, tables, plugins) are accepted and ignored.
function helpers.get_db_utils()
  blueprints.reset()
  return blueprints.bp, blueprints.db
end


local function strategies()
  local i = 0
  return function()
    i = i + 1
    if i == 1 then
      return i, "off"
    end
  end
end


--- Strategies the Kong-style specs iterate: "off" (DB-less). Store specs
-- start gateways with database = "embedded" or "postgres" themselves.
helpers.each_strategy = strategies
helpers.all_strategies = strategies


--- Writes a declarative config (a Lua table, or a YAML string; nil: the
-- blueprints store) to a file.
-- @return the path
function helpers.make_yaml_file(content, path)
  util.init_run_dir()
  if content == nil then
    content = blueprints.to_declarative()
  end
  if not path then
    path = RUN_DIR .. "/kong-" .. util.next_id("conf_file") .. ".yml"
  end
  if type(content) == "table" then
    content = lyaml.dump({ content })
  end
  assert(util.write_file(path, content or ""))
  return path
end


--- Writes a kong.conf-style file: `name = value` lines, sorted.
-- Table values of declarative_config are written to a YAML file first.
-- @return the path
function helpers.write_conf(conf, path)
  util.init_run_dir()
  if not path then
    path = RUN_DIR .. "/sluice-" .. util.next_id("conf_file") .. ".conf"
  end
  local keys = {}
  for k in pairs(conf) do
    keys[#keys + 1] = k
  end
  -- spec gateways are DB-less unless the spec names a store
  if conf.database == nil then
    keys[#keys + 1] = "database"
  end
  table_sort(keys)
  local lines = {}
  for _, k in ipairs(keys) do
    local v = conf[k]
    if k == "database" and v == nil then
      v = "off"
    end
    if k == "declarative_config" and type(v) == "table" then
      v = helpers.make_yaml_file(v)
    elseif k == "declarative_config_string" and type(v) == "table" then
      v = cjson.encode(v)
    end
    if v ~= nil and v ~= "" then
      lines[#lines + 1] = k .. " = " .. conf_value(v)
    end
  end
  assert(util.write_file(path, table_concat(lines, "\n") .. "\n"))
  return path
end


-- Gateway lifecycle -------------------------------------------------------


--- Maps Kong-style env tables: conf keys (lower case) become KONG_<UPPER>;
-- names with an upper-case letter are passed as they are.
local function build_env(env)
  if not env then
    return nil
  end
  local out = {}
  for k, v in pairs(env) do
    if string_find(k, "%u") then
      out[k] = conf_value(v)
    else
      out["KONG_" .. string_upper(k)] = conf_value(v)
    end
  end
  return out
end


--- Runs `<bin> <cmd>` (bounded by `timeout` s, default 30).
-- @return ok, stdout, stderr, exit_code  (Kong's order is ok, stderr,
--         stdout: this follows Sluice's brief)
function helpers.kong_exec(cmd, env, timeout)
  return util.exec(util.quote(helpers.bin()) .. " " .. (cmd or ""),
                   build_env(env), timeout or CMD_TIMEOUT)
end


function helpers.get_pid(prefix)
  prefix = prefix or helpers.test_conf.prefix
  local data = util.read_file(prefix .. "/pids/sluice.pid")
  return data and tonumber(string_match(data, "(%d+)"))
end


function helpers.error_log(prefix)
  return (prefix or helpers.test_conf.prefix) .. "/logs/error.log"
end


asserts.default_errlog = function()
  return helpers.error_log()
end


local function log_tail(prefix)
  local log = util.read_file(helpers.error_log(prefix))
  if not log or log == "" then
    return "(error log empty or missing: " .. helpers.error_log(prefix) .. ")"
  end
  return "error log tail:\n" .. util.tail(log, 3000)
end


local function is_off(v)
  return v == false or v == "off" or v == "false"
end


--- Starts the gateway.
-- conf: kong.conf overrides merged over helpers.test_conf (a table
--       declarative_config is written to a YAML file).
-- opts: env (extra env vars, Kong-style), timeout (s to wait for the proxy
--       port, 10), preserve_prefix, foreground (run `start` in the
--       background as a child: implied by daemon = off).
-- For Kong's signature start_kong(env, tables, preserve_prefix), a
-- boolean third argument is taken as preserve_prefix.
-- @return true, or nil, err (with the tail of the error log)
function helpers.start_kong(conf, opts, preserve_prefix)
  conf = conf or {}
  if type(opts) ~= "table" or opts[1] ~= nil then
    opts = {}
  end
  if preserve_prefix ~= nil and opts.preserve_prefix == nil then
    opts.preserve_prefix = preserve_prefix
  end

  local merged = {}
  for k, v in pairs(helpers.test_conf) do
    merged[k] = v
  end
  for k, v in pairs(conf) do
    merged[k] = v
  end
  local prefix = merged.prefix

  -- DB-less unless the spec asks for a store ("embedded" or "postgres")
  if merged.database == nil then
    merged.database = "off"
  end
  -- Kong keys without meaning for Sluice.
  merged.nginx_conf = nil
  if merged.declarative_config == nil
     and merged.declarative_config_string == nil
     and not blueprints.is_empty()
  then
    merged.declarative_config = helpers.make_yaml_file()
  end

  if not opts.preserve_prefix then
    util.rm_rf(prefix)
  end
  util.mkdir(prefix .. "/logs")
  util.mkdir(prefix .. "/pids")

  local conf_path = helpers.write_conf(merged)
  local bin = helpers.bin()
  local cmd = util.quote(bin) .. " start -c " .. util.quote(conf_path)
              .. " -p " .. util.quote(prefix)
  local env = build_env(opts.env)

  local foreground = opts.foreground or is_off(merged.daemon)
  local pid
  if foreground then
    if not is_off(merged.daemon) then
      cmd = cmd .. " --foreground"
    end
    local err
    pid, err = util.spawn(cmd, prefix .. "/logs/stdout.log", env)
    if not pid then
      return nil, err
    end
  else
    local ok, stdout, stderr, code = util.exec(cmd, env, CMD_TIMEOUT)
    if not ok then
      local stale = helpers.get_pid(prefix)
      if stale and util.pid_alive(stale) then
        util.terminate(stale, 5)
      end
      return nil, string_format("'%s start' failed (exit %s):\n%s%s\n%s",
                                bin, tostring(code), stderr, stdout,
                                log_tail(prefix))
    end
  end

  local timeout = opts.timeout or START_TIMEOUT
  local host, port = listen_addr(merged.proxy_listen, false)
  if not host then
    host, port = listen_addr(merged.proxy_listen, true)
  end
  if not host then
    host, port = listen_addr(merged.admin_listen, false)
  end
  if host then
    local ok, err = util.wait_port(host, port, timeout, pid)
    if not ok then
      local master = helpers.get_pid(prefix) or pid
      if master then
        util.terminate(master, 5)
      end
      if pid and pid ~= master then
        util.terminate(pid, 5)
      end
      return nil, "sluice did not come up: " .. err .. "\n"
                  .. util.tail(util.read_file(prefix .. "/logs/stdout.log")
                               or "", 2000) .. log_tail(prefix)
    end
  end

  -- The listener may accept (backlog) before the pid file is written.
  pcall(util.wait_until, function()
    return helpers.get_pid(prefix)
  end, 3, 0.02)
  local master = helpers.get_pid(prefix) or pid
  if master then
    util.track(master)
  end
  running[prefix] = merged
  last_started = merged
  merged._child_pid = pid
  return true
end


--- Stops the gateway: `<bin> stop`, then waits for the PID to go (bounded),
-- then SIGKILL. Removes the prefix unless preserve_prefix.
function helpers.stop_kong(prefix, preserve_prefix, _, signal)
  prefix = prefix or helpers.test_conf.prefix
  local conf = running[prefix]
  local pid = helpers.get_pid(prefix) or (conf and conf._child_pid)
  local child = conf and conf._child_pid

  local err
  if pid and util.pid_alive(pid) then
    if signal then
      util.kill(pid, signal)
    else
      local ok, _, stderr = helpers.kong_exec("stop -p "
                                              .. util.quote(prefix), nil,
                                              STOP_TIMEOUT + 5)
      if not ok then
        err = stderr
      end
    end
    if not util.wait_pid_gone(pid, STOP_TIMEOUT) then
      util.terminate(pid, 2)
    end
  end
  if child and child ~= pid then
    util.terminate(child, 5)
  end
  if pid then
    util.untrack(pid)
  end

  if last_started == running[prefix] then
    last_started = nil
  end
  running[prefix] = nil
  helpers.collect_sanitizer_reports(prefix)
  if not preserve_prefix then
    util.rm_rf(prefix)
  end
  return true, err
end


local SANITIZER_MARKS = {
  "runtime error:", "ERROR: AddressSanitizer", "ERROR: LeakSanitizer",
}


--- When SLUICE_SANITIZER_REPORTS names a file, appends to it every sanitizer
-- report (ASan, LSan, UBSan "runtime error:") found in the prefix's error
-- log, with the lines after it, so `make test` can fail on them after the
-- prefix is gone.
function helpers.collect_sanitizer_reports(prefix)
  local out_path = os.getenv("SLUICE_SANITIZER_REPORTS")
  if not out_path or out_path == "" then
    return
  end
  local f = io.open(prefix .. "/logs/error.log", "r")
  if not f then
    return
  end
  local lines = {}
  for line in f:lines() do
    lines[#lines + 1] = line
  end
  f:close()
  local found = {}
  local i = 1
  while i <= #lines do
    local hit = false
    for _, mark in ipairs(SANITIZER_MARKS) do
      if lines[i]:find(mark, 1, true) then
        hit = true
        break
      end
    end
    if hit then
      found[#found + 1] = "== " .. prefix .. "/logs/error.log"
      for k = i, math.min(i + 15, #lines) do
        found[#found + 1] = lines[k]
      end
      i = i + 16
    else
      i = i + 1
    end
  end
  if #found > 0 then
    local o = io.open(out_path, "a")
    if o then
      o:write(table.concat(found, "\n"), "\n")
      o:close()
    end
  end
end


--- Sends `reload` (optionally with a new conf table) and waits until the
-- proxy port accepts again.
function helpers.reload_kong(conf, prefix)
  prefix = prefix or (conf and conf.prefix) or helpers.test_conf.prefix
  local cmd = "reload -p " .. util.quote(prefix)
  if conf then
    local merged = {}
    for k, v in pairs(current_conf(prefix)) do
      merged[k] = v
    end
    for k, v in pairs(conf) do
      merged[k] = v
    end
    merged._child_pid = nil
    cmd = cmd .. " -c " .. util.quote(helpers.write_conf(merged))
    running[prefix] = merged
  end
  local ok, stdout, stderr = helpers.kong_exec(cmd)
  if not ok then
    return nil, stderr .. stdout .. "\n" .. log_tail(prefix)
  end
  return true
end


function helpers.restart_kong(conf, opts)
  helpers.stop_kong(conf and conf.prefix, true)
  return helpers.start_kong(conf, opts, true)
end


--- Truncates a log file (default: the error log of the test prefix).
function helpers.clean_logfile(path)
  path = path or helpers.error_log()
  if util.exists(path) then
    util.write_file(path, "")
  end
end


-- Clients ---------------------------------------------------------------


--- http_client(host, port, timeout_ms) or http_client{ host, port,
-- timeout, scheme, ssl_verify, server_name }. Raises when it cannot
-- connect (as Kong's does).
function helpers.http_client(host, port, timeout)
  local opts = host
  if type(host) ~= "table" then
    opts = { host = host, port = port, timeout = timeout }
  end
  return assert(http_client.new(opts))
end


function helpers.proxy_client(timeout, port, ip)
  local host, p = listen_addr(current_conf().proxy_listen, false)
  return helpers.http_client(ip or host or "127.0.0.1", port or p, timeout)
end


function helpers.proxy_ssl_client(timeout, sni, port)
  local host, p = listen_addr(current_conf().proxy_listen, true)
  return helpers.http_client({
    host = host or "127.0.0.1",
    port = port or p,
    timeout = timeout,
    scheme = "https",
    ssl_verify = false,
    server_name = sni,
  })
end


function helpers.admin_client(timeout, port)
  local host, p = listen_addr(current_conf().admin_listen, false)
  return helpers.http_client(host or "127.0.0.1", port or p, timeout)
end


helpers.encode_args = http_client.encode_args


-- Mocks -------------------------------------------------------------------


--- Starts the nginx mock upstream on free ports. Also sets
-- helpers.mock_upstream_host/port/ssl_port/url to the last one started.
-- @return { host, port, ssl_port, url, ssl_url, pid, error_log, stop }
function helpers.start_mock_upstream(opts)
  local mock = assert(mock_upstream.start(opts))
  helpers.mock_upstream_host = mock.host
  helpers.mock_upstream_port = mock.port
  helpers.mock_upstream_ssl_port = mock.ssl_port
  helpers.mock_upstream_url = mock.url
  helpers.mock_upstream_ssl_url = mock.ssl_url
  return mock
end


local TCP_SCRIPT = ROOT .. "/spec/fixtures/tcp_server.lua"


--- A raw TCP peer (spec/fixtures/tcp_server.lua in its own process).
-- port: nil for a free one. opts: n (connections, 1), timeout (s, 10),
-- responses (array; a string or an array of strings and sleeps), mode
-- ("respond" | "silent" | "close"), read ("headers" | "idle"), read_idle,
-- delay, linger, host. See the script for the details.
-- @return server: .host .port .pid, :received() (array of the bytes read
--   per connection so far), :join(timeout) -> ok, data (the first
--   connection's bytes when n == 1, else the array), :stop()
function helpers.tcp_server(port, opts)
  opts = opts or {}
  util.init_run_dir()
  local base = RUN_DIR .. "/tcp_server-" .. util.next_id("tcp_server")
  local conf = {}
  for k, v in pairs(opts) do
    conf[k] = v
  end
  if type(conf.response) == "string" then
    conf.responses = { conf.response }
    conf.response = nil
  end
  conf.host = conf.host or "127.0.0.1"
  conf.port = port or util.get_available_port()
  conf.n = conf.n or 1
  conf.timeout = conf.timeout or 10
  conf.ready = base .. ".ready"
  conf.record = base .. ".json"
  -- "ready" must be this server's own word that it listens
  os.remove(conf.ready)
  os.remove(conf.record)
  assert(util.write_file(base .. ".conf.json", cjson.encode(conf)))

  local pid = assert(util.spawn("luajit " .. util.quote(TCP_SCRIPT) .. " "
                                .. util.quote(base .. ".conf.json"),
                                base .. ".log"))
  local ok = pcall(util.wait_until, function()
    return util.exists(conf.ready) or not util.pid_alive(pid)
  end, 10, 0.01)
  if not ok or not util.exists(conf.ready) then
    util.terminate(pid, 2)
    error("tcp_server did not start: "
          .. tostring(util.read_file(base .. ".log")), 2)
  end

  local server = {
    host = conf.host,
    port = conf.port,
    pid = pid,
    log = base .. ".log",
  }

  function server.received()
    local data = util.read_file(conf.record)
    if not data then
      return {}
    end
    local list = cjson.decode(data)
    return type(list) == "table" and list or {}
  end

  function server.join(_, timeout)
    local done = util.wait_pid_gone(pid, timeout or conf.timeout + 5)
    if not done then
      util.terminate(pid, 2)
    end
    util.untrack(pid)
    local list = server.received()
    if conf.n == 1 then
      return done, list[1]
    end
    return done, list
  end

  function server.stop()
    util.terminate(pid, 2)
    return true
  end

  return server
end


--- Stops every process this run started that is still tracked
-- (mock upstreams, tcp servers, gateways).
function helpers.stop_all()
  for prefix in pairs(running) do
    helpers.stop_kong(prefix, true)
  end
  for _, pid in ipairs(util.tracked_pids()) do
    util.terminate(pid, 5)
  end
end


return helpers
