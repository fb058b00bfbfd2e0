-- Test certificates made with the openssl CLI at test time: a CA, a server
-- certificate for "localhost" signed by it, and an unrelated CA.

local helpers = require "spec.helpers"


local _M = {}


function _M.sh(cmd)
  local p = io.popen("(" .. cmd .. ") 2>&1; echo \"rc=$?\"")
  local out = p:read("*a")
  p:close()
  local rc = tonumber(out:match("rc=(%d+)%s*$"))
  assert(rc == 0, "command failed: " .. cmd .. "\n" .. out)
  return out
end


function _M.q(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end


-- Makes ca.pem/ca.key, server.pem/server.key (CN and SAN localhost, signed
-- by the CA) and other-ca.pem in `dir`; returns dir.
function _M.make(dir)
  local sh, q = _M.sh, _M.q
  sh("mkdir -p " .. q(dir))
  local d = function(f) return q(dir .. "/" .. f) end
  local subj_ca = "/CN=Sluice Spec Test CA"
  sh("openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "
     .. q(subj_ca) .. " -keyout " .. d("ca.key") .. " -out " .. d("ca.pem")
     .. " -addext basicConstraints=critical,CA:TRUE"
     .. " -addext keyUsage=critical,keyCertSign,cRLSign")
  sh("openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "
     .. q("/CN=Sluice Spec Other CA") .. " -keyout " .. d("other-ca.key")
     .. " -out " .. d("other-ca.pem")
     .. " -addext basicConstraints=critical,CA:TRUE"
     .. " -addext keyUsage=critical,keyCertSign,cRLSign")
  sh("openssl req -new -newkey rsa:2048 -nodes -subj /CN=localhost"
     .. " -keyout " .. d("server.key") .. " -out " .. d("server.csr"))
  helpers.file.write(dir .. "/ext.cnf",
                     "subjectAltName=DNS:localhost\n"
                     .. "basicConstraints=CA:FALSE\n"
                     .. "extendedKeyUsage=serverAuth\n")
  sh("openssl x509 -req -in " .. d("server.csr") .. " -CA " .. d("ca.pem")
     .. " -CAkey " .. d("ca.key") .. " -CAcreateserial -days 2"
     .. " -extfile " .. d("ext.cnf") .. " -out " .. d("server.pem"))
  -- sanity: the chain verifies for localhost
  sh("openssl verify -CAfile " .. d("ca.pem") .. " -verify_hostname localhost "
     .. d("server.pem"))
  return dir
end


return _M
