-- Helpers shared by the function-platform plugin specs (28-openwhisk,
-- 29-openfaas, 30-azure-functions):
--
--   local fh = require "spec.04-plugins.28-openwhisk.faas_helpers"
--   fh.server_cert(names)    -> cert, key: signed by the run's mock_faas CA
--                               (mock_faas.pki()), SANs = names
--   fh.self_signed(names)    -> cert, key: trusted by nobody
--   fh.foreign_cert(names)   -> cert, key, ca: signed by a CA of its own
--                               that nobody trusts
--   fh.hosts_file(names)     -> path of a hosts file mapping every name to
--                               127.0.0.1 (for kong.conf dns_hostsfile)
--   fh.route(name, config, plugin, extra) -> a route entity for host
--                               <name>.<plugin>.test with the plugin on it
--   fh.json(res)             -> the decoded body of a spec response
--
-- Certificates are made with the openssl CLI in the run directory.

local cjson = require "cjson"
local util = require "spec.internal.util"
local mf = require "spec.internal.mock_faas"


local _M = {}


local function sh(cmd)
  local ok, out, err = util.exec(cmd, nil, 60)
  assert(ok, "command failed: " .. cmd .. "\n" .. tostring(out)
             .. tostring(err))
  return out
end


local function new_dir(tag)
  util.init_run_dir()
  local dir = util.RUN_DIR .. "/faas-" .. tag .. "-"
              .. util.next_id("faas_helpers")
  util.mkdir(dir)
  return dir
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


--- The decoded JSON body of a spec response.
function _M.json(res)
  local body = assert(res:read_body())
  local ok, t = pcall(cjson.decode, body)
  assert(ok, "not JSON: " .. tostring(body))
  return t
end


return _M
