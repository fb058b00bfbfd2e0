-- Helpers shared by the function-platform plugin specs (27-aws-lambda,
-- 28-openwhisk, 29-openfaas, 30-azure-functions) that run a real gateway
-- against the mocks of spec/internal/mock_faas:
--
--   local fp = require "spec.internal.faas_plugins"
--   fp.server_cert(names)    -> cert, key: signed by the run's mock_faas CA
--                               (mock_faas.pki()), SANs = names
--   fp.self_signed(names)    -> cert, key: trusted by nobody
--   fp.foreign_cert(names)   -> cert, key, ca: signed by a CA of its own
--                               that nobody trusts
--   fp.hosts_file(names)     -> path of a hosts file mapping every name to
--                               127.0.0.1 (for kong.conf dns_hostsfile)
--   fp.tmpdir(tag)           -> a new directory in the run directory
--   fp.route(name, config, plugin, extra) -> a route entity for host
--                               <name>.<plugin>.test with the plugin on it
--   fp.json(res[, status])   -> the decoded body of a spec response (with
--                               `status`: asserted first, as res_status)
--   fp.b64(s), fp.unb64(s)   -> base64, as ngx.encode/decode_base64
--   fp.it_io()               -> `it`, or while the cosockets the plugins
--                               call out through are missing, a pending
--                               ("WAITS: ...") in its place
--   fp.gateway(opts)         -> the per-spec hooks (client, teardown) and
--                               request helpers: see below
--
-- Certificates are made with the openssl CLI in the run directory. The
-- functions that register busted blocks (it_io, gateway) take them from
-- the calling spec's environment: busted keeps them out of _G.

local cjson = require "cjson"
local luassert = require "luassert"
local helpers = require "spec.helpers"
local util = require "spec.internal.util"
local mf = require "spec.internal.mock_faas"
local crypto = require "sluice.ngx.crypto"


local _M = {}


local function sh(cmd)
  local ok, out, err = util.exec(cmd, nil, 60)
  assert(ok, "command failed: " .. cmd .. "\n" .. tostring(out)
             .. tostring(err))
  return out
end


--- A new directory <run dir>/<tag>-<n> (removed with the run directory).
function _M.tmpdir(tag)
  util.init_run_dir()
  local dir = util.RUN_DIR .. "/" .. tag .. "-" .. util.next_id("faas_plugins")
  util.mkdir(dir)
  return dir
end


local function new_dir(tag)
  return _M.tmpdir("faas-" .. tag)
end


local function san(names)
  local parts = {}
  for i, n in ipairs(names) do
    parts[i] = (n:match("^[%d.]+$") and "IP:" or "DNS:") .. n
  end
  return table.concat(parts, ",")
end


--- A server certificate for `names`, signed by the run's test CA.
-- @return cert path, key path, the CA path
function _M.server_cert(names)
  local pki = assert(mf.pki())
  local dir = new_dir("cert")
  local q = util.quote
  sh("openssl req -new -newkey rsa:2048 -nodes -subj " .. q("/CN=" .. names[1])
     .. " -keyout " .. q(dir .. "/server.key") .. " -out "
     .. q(dir .. "/server.csr"))
  assert(util.write_file(dir .. "/ext.cnf",
                         "subjectAltName=" .. san(names) .. "\n"
                         .. "basicConstraints=CA:FALSE\n"
                         .. "extendedKeyUsage=serverAuth\n"))
  sh("openssl x509 -req -in " .. q(dir .. "/server.csr") .. " -CA "
     .. q(pki.ca_cert) .. " -CAkey " .. q(pki.ca_key) .. " -CAserial "
     .. q(dir .. "/ca.srl") .. " -CAcreateserial -days 2 -extfile "
     .. q(dir .. "/ext.cnf") .. " -out " .. q(dir .. "/server.pem"))
  return dir .. "/server.pem", dir .. "/server.key", pki.ca_cert
end


--- A self-signed certificate for `names` (no CA vouches for it).
-- (Used by spec/04-plugins/27-aws-lambda too.)
function _M.self_signed(names)
  local dir = new_dir("self")
  local q = util.quote
  sh("openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "
     .. q("/CN=" .. names[1]) .. " -addext "
     .. q("subjectAltName=" .. san(names)) .. " -keyout "
     .. q(dir .. "/server.key") .. " -out " .. q(dir .. "/server.pem"))
  return dir .. "/server.pem", dir .. "/server.key"
end


--- A certificate for `names` signed by a CA of its own, which nobody
-- trusts (the "wrong CA" case).
-- @return cert path, key path, that CA's path
function _M.foreign_cert(names)
  local dir = new_dir("foreign")
  local q = util.quote
  local function d(f)
    return q(dir .. "/" .. f)
  end
  sh("openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "
     .. q("/CN=Sluice spec foreign CA") .. " -keyout " .. d("ca.key")
     .. " -out " .. d("ca.pem")
     .. " -addext basicConstraints=critical,CA:TRUE"
     .. " -addext keyUsage=critical,keyCertSign,cRLSign")
  sh("openssl req -new -newkey rsa:2048 -nodes -subj " .. q("/CN=" .. names[1])
     .. " -keyout " .. d("server.key") .. " -out " .. d("server.csr"))
  assert(util.write_file(dir .. "/ext.cnf",
                         "subjectAltName=" .. san(names) .. "\n"
                         .. "basicConstraints=CA:FALSE\n"
                         .. "extendedKeyUsage=serverAuth\n"))
  sh("openssl x509 -req -in " .. d("server.csr") .. " -CA " .. d("ca.pem")
     .. " -CAkey " .. d("ca.key") .. " -CAcreateserial -days 2 -extfile "
     .. d("ext.cnf") .. " -out " .. d("server.pem"))
  return dir .. "/server.pem", dir .. "/server.key", dir .. "/ca.pem"
end


--- A hosts file mapping each name to 127.0.0.1.
function _M.hosts_file(names)
  local dir = new_dir("hosts")
  local lines = { "127.0.0.1 localhost" }
  for _, n in ipairs(names) do
    lines[#lines + 1] = "127.0.0.1 " .. n
  end
  local path = dir .. "/hosts"
  assert(util.write_file(path, table.concat(lines, "\n") .. "\n"))
  return path
end


--- A route for host <name>.<plugin>.test carrying the plugin; `extra`
-- adds route fields (paths, strip_path, methods...).
function _M.route(name, config, plugin, extra)
  local r = {
    name = plugin .. "-" .. name,
    hosts = { name .. "." .. plugin .. ".test" },
    plugins = { { name = plugin, config = config } },
  }
  for k, v in pairs(extra or {}) do
    r[k] = v
  end
  return r
end


--- The decoded JSON body of a spec response; with `status`, the response
-- must have that status first (assert.res_status).
function _M.json(res, status)
  local body
  if status then
    body = luassert.res_status(status, res)
  else
    body = assert(res:read_body())
  end
  local ok, t = pcall(cjson.decode, body)
  assert(ok, "not JSON: " .. tostring(body))
  return t
end


function _M.b64(s)
  return crypto.encode_base64(s)
end


function _M.unb64(s)
  return crypto.decode_base64(s)
end


--- `it` where the cosockets exist, else a function turning each case into
-- a pending "WAITS: cosockets" (the plugins call out through them).
function _M.it_io()
  local env = getfenv(2)
  if helpers.file.exists(helpers.ROOT .. "/lua/sluice/ngx/socket.lua") then
    return env.it
  end
  return function(name)
    env.pending("WAITS: cosockets (lua/sluice/ngx/socket.lua): " .. name)
  end
end


--- In a describe block, after its lazy_setup: the hooks of a gateway spec.
-- opts.stop()   -> a list of mocks / servers (nil entries allowed) that
--                  lazy_teardown stops, after the gateway
-- opts.clear()  -> the mock whose recorded requests are cleared before
--                  each test (optional)
-- opts.plugin   -> call() sends Host: <name>.<plugin>.test
-- opts.method   -> call()'s default method ("GET")
-- Before each test a proxy client (10 s timeout) is opened; after it, it
-- is closed. Returns a table with:
--   gw.client            the current test's proxy client
--   gw.send(req)         client:send(req), asserted
--   gw.call(name, opts)  opts.method / path ("/") / query / headers / body
--                        sent to the route <name>.<plugin>.test
function _M.gateway(opts)
  local env = getfenv(2)
  local gw = {}

  env.lazy_teardown(function()
    helpers.stop_kong()
    local list = opts.stop and opts.stop() or {}
    for i = 1, table.maxn(list) do
      if list[i] then
        list[i].stop()
      end
    end
  end)

  env.before_each(function()
    gw.client = helpers.proxy_client(10000)
    local rec = opts.clear and opts.clear()
    if rec then
      rec.clear()
    end
  end)

  env.after_each(function()
    if gw.client then
      gw.client:close()
      gw.client = nil
    end
  end)

  function gw.send(req)
    return assert(gw.client:send(req))
  end

  function gw.call(name, o)
    o = o or {}
    local headers = o.headers or {}
    headers.Host = name .. "." .. opts.plugin .. ".test"
    return gw.send({
      method = o.method or opts.method or "GET",
      path = o.path or "/",
      query = o.query,
      headers = headers,
      body = o.body,
    })
  end

  return gw
end


return _M
