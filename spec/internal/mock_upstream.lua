-- Starts and stops the nginx-based mock upstream
-- (spec/fixtures/mock_upstream/{nginx.conf,mock_upstream.lua}) on free
-- loopback ports, with an https listener on a self-signed certificate.

local util = require "spec.internal.util"


local tonumber = tonumber
local tostring = tostring
local pairs = pairs
local string_gsub = string.gsub


local _M = {}


local FIXTURES = util.ROOT .. "/spec/fixtures/mock_upstream"
local NGINX = os.getenv("SLUICE_SPEC_NGINX") or "nginx"


-- Run-wide (see util.state): the certificate outlives busted reloading this
-- module for every spec file.
local state = util.state


-- One certificate per run is enough; later mocks copy it.
local function make_cert()
  if state.mock_cert_dir then
    return true
  end
  local dir = util.RUN_DIR .. "/mock-cert"
  util.mkdir(dir)
  local ok, _, err = util.exec(
    "openssl req -x509 -newkey rsa:2048 -nodes -subj /CN=localhost "
    .. "-days 1 -keyout " .. util.quote(dir .. "/key.pem")
    .. " -out " .. util.quote(dir .. "/cert.pem"), nil, 60)
  if not ok then
    return nil, "openssl failed: " .. err
  end
  state.mock_cert_dir = dir
  return true
end


local function render(tpl, vars)
  return (string_gsub(tpl, "%${([%w_]+)}", function(k)
    return vars[k] and tostring(vars[k])
  end))
end


local function try_start(opts, dir)
  local host = opts.host or "127.0.0.1"
  local port = opts.port or util.get_available_port()
  local ssl_port = opts.ssl_port or util.get_available_port()

  local tpl = assert(util.read_file(FIXTURES .. "/nginx.conf"))
  local conf = render(tpl, {
    PREFIX = dir,
    FIXTURES = FIXTURES,
    HOST = host,
    PORT = port,
    SSL_PORT = ssl_port,
    LOG_LEVEL = opts.log_level or "info",
    ACCESS_LOG = opts.access_log == false and "off"
                 or (dir .. "/logs/access.log"),
  })
  util.write_file(dir .. "/nginx.conf", conf)
  util.rm_rf(dir .. "/logs/nginx.pid")

  local ok, _, err = util.exec(NGINX .. " -p " .. util.quote(dir)
                               .. " -c " .. util.quote(dir .. "/nginx.conf")
                               .. " -e " .. util.quote(dir
                                                      .. "/logs/error.log"),
                               nil, 20)
  if not ok then
    return nil, "nginx failed to start: " .. err .. "\n"
                .. util.tail(util.read_file(dir .. "/logs/error.log"), 2000)
  end

  local pid
  util.wait_until(function()
    pid = tonumber(util.read_file(dir .. "/logs/nginx.pid") or "")
    return pid
  end, 5)
  util.track(pid)

  local up, werr = util.wait_port(host, port, 10, pid)
  if up then
    up, werr = util.wait_port(host, ssl_port, 10, pid)
  end
  if not up then
    util.terminate(pid, 5)
    return nil, werr .. "\n"
                .. util.tail(util.read_file(dir .. "/logs/error.log"), 2000)
  end

  return {
    host = host,
    port = port,
    ssl_port = ssl_port,
    pid = pid,
    prefix = dir,
    url = "http://" .. host .. ":" .. port,
    ssl_url = "https://" .. host .. ":" .. ssl_port,
    error_log = dir .. "/logs/error.log",
    access_log = dir .. "/logs/access.log",
  }
end


--- Starts a mock upstream.
-- opts: host (127.0.0.1), port, ssl_port (free ones by default),
--       log_level (info), access_log (false to disable)
-- @return { host, port, ssl_port, pid, prefix, url, ssl_url, error_log,
--           access_log, stop = function() } or nil, err
function _M.start(opts)
  opts = opts or {}
  util.init_run_dir()
  local ok, err = make_cert()
  if not ok then
    return nil, err
  end

  local dir = util.RUN_DIR .. "/mock_upstream-"
              .. util.next_id("mock_upstream")
  for _, sub in pairs({ "logs", "tmp" }) do
    util.mkdir(dir .. "/" .. sub)
  end
  local cert_dir = state.mock_cert_dir
  util.exec("cp " .. util.quote(cert_dir .. "/cert.pem") .. " "
            .. util.quote(cert_dir .. "/key.pem") .. " " .. util.quote(dir))

  -- A port picked free may be taken meanwhile: retry with new ones.
  local mock
  for _ = 1, (opts.port and 1 or 3) do
    mock, err = try_start(opts, dir)
    if mock then
      break
    end
  end
  if not mock then
    return nil, err
  end

  function mock.stop(_, timeout)
    if mock.pid then
      util.terminate(mock.pid, timeout or 10)
      mock.pid = nil
    end
    return true
  end

  return mock
end


return _M
