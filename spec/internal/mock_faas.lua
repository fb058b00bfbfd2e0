-- Starts and stops the mock function platforms of
-- spec/fixtures/mock_faas/mock_faas.py (AWS Lambda, Lambda function URL,
-- STS, IMDS, ECS, OpenWhisk, OpenFaaS, Azure Functions, echo) for the
-- serverless plugin specs. One Python process per mock, on a free loopback
-- port, over HTTP or HTTPS; its PID is tracked so the run's watchdog kills
-- it if a spec forgets to.
--
--   local mf = require "spec.internal.mock_faas"
--   local m = assert(mf.start({ platform = "lambda", tls = true,
--                               credentials = { mf.AWS } }))
--   m.port, m.host, m.url ("https://127.0.0.1:<port>"), m.pid,
--   m.ca_cert / m.cert / m.key / m.other_ca_cert (tls only), m.log
--   m.requests()        -- decoded array of what the mock received
--   m.clear()           -- forget them
--   m.callbacks()       -- openfaas: the X-Callback-Url POSTs it made
--   m.set_config{...}   -- change options of the running mock
--   m.client(timeout)   -- a spec http_client connected to the mock
--   m.stop()
--   mf.stop_all()       -- every mock this run started
--   mf.pki()            -- { ca_cert, ca_key, cert, key, other_ca_cert }
--   mf.sigv4            -- spec/fixtures/mock_faas/sigv4.lua
--
-- Every option of start() other than the ones below goes to the mock as
-- is (see spec/fixtures/mock_faas/README.md): credentials, region,
-- slow_seconds, api_key, service_token, function_key, ...
--   platform (required), host ("127.0.0.1"), port (a free one),
--   tls (false), cert / key (default: the run's localhost certificate).

local cjson = require "cjson.safe"
local util = require "spec.internal.util"
local http_client = require "spec.internal.http_client"


local os_getenv = os.getenv
local os_remove = os.remove
local tostring = tostring
local type = type
local pairs = pairs
local ipairs = ipairs
local error = error
local pcall = pcall


local _M = {}


local DIR = util.ROOT .. "/spec/fixtures/mock_faas"
local SCRIPT = DIR .. "/mock_faas.py"
local START_TIMEOUT = 10
local OWN_KEYS = { platform = true, host = true, port = true, tls = true,
                   cert = true, key = true }


--- Credentials the AWS mocks are usually started with (static keys; the
-- secret has "/" and "+" on purpose).
_M.AWS = {
  access_key = "AKIDSLUICEMOCKEXAMPL",
  secret_key = "sluice/Mock+Secret/Key0123456789abcdefGH",
  region = "us-east-1",
  account_id = "123456789012",
}


-- Run-wide state (busted reloads this module for every spec file).
local state = util.state
state.mock_faas = state.mock_faas or { pids = {} }
local mstate = state.mock_faas


local function python()
  local py = os_getenv("SLUICE_SPEC_PYTHON")
  if py and py ~= "" then
    return py
  end
  if util.exists("/usr/bin/python3") then
    return "/usr/bin/python3"
  end
  return "python3"
end


local function sh(cmd, timeout)
  local ok, out, err = util.exec(cmd, nil, timeout or 60)
  if not ok then
    return nil, "command failed: " .. cmd .. "\n" .. out .. err
  end
  return true
end


--- The run's test PKI, made once with the openssl CLI: a CA, a server
-- certificate for localhost / 127.0.0.1 signed by it, and an unrelated CA
-- (to test that verification fails).
function _M.pki()
  if mstate.pki then
    return mstate.pki
  end
  util.init_run_dir()
  local dir = util.RUN_DIR .. "/mock-faas-pki"
  util.mkdir(dir)
  local function d(f)
    return util.quote(dir .. "/" .. f)
  end
  local ca_ext = " -addext basicConstraints=critical,CA:TRUE"
                 .. " -addext keyUsage=critical,keyCertSign,cRLSign"
  local steps = {
    "openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "
    .. util.quote("/CN=Sluice mock_faas CA") .. " -keyout " .. d("ca.key")
    .. " -out " .. d("ca.pem") .. ca_ext,
    "openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "
    .. util.quote("/CN=Sluice mock_faas other CA") .. " -keyout "
    .. d("other-ca.key") .. " -out " .. d("other-ca.pem") .. ca_ext,
    "openssl req -new -newkey rsa:2048 -nodes -subj /CN=localhost -keyout "
    .. d("server.key") .. " -out " .. d("server.csr"),
  }
  for _, cmd in ipairs(steps) do
    local ok, err = sh(cmd)
    if not ok then
      return nil, err
    end
  end
  util.write_file(dir .. "/ext.cnf",
                  "subjectAltName=DNS:localhost,IP:127.0.0.1\n"
                  .. "basicConstraints=CA:FALSE\n"
                  .. "extendedKeyUsage=serverAuth\n")
  local ok, err = sh("openssl x509 -req -in " .. d("server.csr") .. " -CA "
                     .. d("ca.pem") .. " -CAkey " .. d("ca.key")
                     .. " -CAcreateserial -days 2 -extfile " .. d("ext.cnf")
                     .. " -out " .. d("server.pem"))
  if not ok then
    return nil, err
  end
  mstate.pki = {
    dir = dir,
    ca_cert = dir .. "/ca.pem",
    ca_key = dir .. "/ca.key",
    cert = dir .. "/server.pem",
    key = dir .. "/server.key",
    other_ca_cert = dir .. "/other-ca.pem",
  }
  return mstate.pki
end


local function forget(pid)
  for i, p in ipairs(mstate.pids) do
    if p == pid then
      table.remove(mstate.pids, i)
      return
    end
  end
end


-- One HTTP(S) call to the mock's own control endpoints.
local function control(m, method, path, body)
  local c, err = http_client.new({
    host = m.host, port = m.port, timeout = 5000,
    scheme = m.tls and "https" or "http", ssl_verify = false,
  })
  if not c then
    return nil, err
  end
  local res
  res, err = c:send({
    method = method, path = path,
    headers = body and { ["Content-Type"] = "application/json" } or nil,
    body = body and cjson.encode(body) or nil,
  })
  if not res then
    c:close()
    return nil, err
  end
  local data = res:read_body()
  c:close()
  if res.status >= 300 then
    return nil, "mock_faas " .. path .. ": HTTP " .. res.status .. " "
                .. tostring(data)
  end
  if data == nil or data == "" then
    return true
  end
  return cjson.decode(data)
end


local function try_start(conf, base, py)
  conf.port = conf.want_port or util.get_available_port()
  local conf_path = base .. ".conf.json"
  local ready = base .. ".ready"
  os_remove(ready)
  conf.ready = ready
  local out = {}
  for k, v in pairs(conf) do
    if k ~= "want_port" then
      out[k] = v
    end
  end
  assert(util.write_file(conf_path, assert(cjson.encode(out))))
  local log = base .. ".log"
  local pid, err = util.spawn(py .. " " .. util.quote(SCRIPT) .. " --config "
                              .. util.quote(conf_path) .. " --exit-with "
                              .. util.OWNER_PID, log)
  if not pid then
    return nil, err
  end
  local ok = pcall(util.wait_until, function()
    return util.exists(ready) or not util.pid_alive(pid)
  end, START_TIMEOUT, 0.01)
  if ok and util.exists(ready) then
    local up, werr = util.wait_port(conf.host, conf.port, 5, pid)
    if up then
      return pid
    end
    err = werr
  end
  util.terminate(pid, 2)
  return nil, "mock_faas (" .. conf.platform .. ") did not start: "
              .. tostring(err or "") .. "\n"
              .. util.tail(util.read_file(log), 2000)
end


--- Starts one mock; see the top of this file.
-- @return the mock object, or nil, err
function _M.start(opts)
  if type(opts) ~= "table" or type(opts.platform) ~= "string" then
    error("mock_faas.start: opts.platform is required", 2)
  end
  util.init_run_dir()
  local conf = {}
  for k, v in pairs(opts) do
    if not OWN_KEYS[k] then
      conf[k] = v
    end
  end
  conf.platform = opts.platform
  conf.host = opts.host or "127.0.0.1"
  conf.want_port = opts.port
  local pki
  if opts.tls then
    local err
    pki, err = _M.pki()
    if not pki then
      return nil, err
    end
    conf.tls = true
    conf.cert = opts.cert or pki.cert
    conf.key = opts.key or pki.key
  end
  local base = util.RUN_DIR .. "/mock_faas-" .. util.next_id("mock_faas")
                .. "-" .. opts.platform
  conf.record = opts.record or (base .. ".requests.json")

  local py = python()
  local pid, err
  for _ = 1, (opts.port and 1 or 3) do
    pid, err = try_start(conf, base, py)
    if pid then
      break
    end
  end
  if not pid then
    return nil, err
  end
  mstate.pids[#mstate.pids + 1] = pid

  local scheme = opts.tls and "https" or "http"
  local authority = conf.host:find(":", 1, true)
                    and ("[" .. conf.host .. "]:" .. conf.port)
                    or (conf.host .. ":" .. conf.port)
  local m = {
    platform = opts.platform,
    host = conf.host,
    port = conf.port,
    pid = pid,
    tls = opts.tls and true or false,
    url = scheme .. "://" .. authority,
    log = base .. ".log",
    record_file = conf.record,
    ca_cert = pki and pki.ca_cert,
    other_ca_cert = pki and pki.other_ca_cert,
    cert = conf.cert,
    key = conf.key,
    config = conf,
  }

  function m.stop()
    if m.pid then
      util.terminate(m.pid, 5)
      forget(m.pid)
      m.pid = nil
    end
    return true
  end

  --- Everything the mock received so far (raises when it cannot tell).
  function m.requests()
    local list, rerr = control(m, "GET", "/__mock/requests")
    if type(list) ~= "table" then
      error("mock_faas requests(): " .. tostring(rerr), 2)
    end
    return list
  end

  --- The last request received (or nil).
  function m.last_request()
    local list = m.requests()
    return list[#list]
  end

  function m.clear()
    local ok, rerr = control(m, "DELETE", "/__mock/requests")
    if not ok then
      error("mock_faas clear(): " .. tostring(rerr), 2)
    end
    return true
  end

  function m.callbacks()
    local list, rerr = control(m, "GET", "/__mock/callbacks")
    if type(list) ~= "table" then
      error("mock_faas callbacks(): " .. tostring(rerr), 2)
    end
    return list
  end

  function m.tls_errors()
    local list, rerr = control(m, "GET", "/__mock/tls_errors")
    if type(list) ~= "table" then
      error("mock_faas tls_errors(): " .. tostring(rerr), 2)
    end
    return list
  end

  function m.set_config(update)
    local cfg, rerr = control(m, "PUT", "/__mock/config", update)
    if type(cfg) ~= "table" then
      error("mock_faas set_config(): " .. tostring(rerr), 2)
    end
    return cfg
  end

  --- A spec http_client connected to the mock (https: verifying against
  -- the run's CA unless opts.ssl_verify == false).
  function m.client(timeout, copts)
    copts = copts or {}
    local verify = m.tls and copts.ssl_verify ~= false
    return http_client.new({
      host = copts.host or m.host,
      port = m.port,
      timeout = timeout or 10000,
      scheme = scheme,
      ssl_verify = verify,
      cafile = verify and (copts.cafile or m.ca_cert) or nil,
      server_name = copts.server_name or (m.tls and "localhost" or nil),
    })
  end

  return m
end


--- Stops every mock this run started and has not stopped yet.
function _M.stop_all()
  local pids = {}
  for i, pid in ipairs(mstate.pids) do
    pids[i] = pid
  end
  for _, pid in ipairs(pids) do
    util.terminate(pid, 5)
    forget(pid)
  end
  return true
end


_M.sigv4 = require "spec.fixtures.mock_faas.sigv4"
_M.SCRIPT = SCRIPT


return _M
