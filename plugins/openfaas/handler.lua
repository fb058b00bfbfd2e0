-- openfaas: invokes a function through an OpenFaaS gateway and answers with
-- the function's response. The request goes to
--
--   <method> /function/<function_name>[.<namespace>][/<path suffix>][?<query>]
--
-- on host:port with the client's method, headers (hop-by-hop ones
-- dropped; X-Forwarded-For appended, X-Forwarded-Host/-Proto set as Kong's
-- proxy does) and body. The path suffix
-- is the request path after what the route matched (`forward_path`), the
-- query the client's raw query string (`forward_query`). With `async` the
-- call goes to /async-function/... and the gateway's answer (202 and
-- X-Call-Id) is relayed; `callback_url` is sent as X-Callback-Url (a
-- client's own X-Callback-Url is never forwarded). basic_auth or
-- bearer_token replace the client's Authorization.
--
-- The function's status, headers and body go back as they are (Via
-- appended). The gateway unreachable or its TLS failing: 502; no answer
-- within `timeout`: 504, with Kong's JSON messages. Cosockets only.

local upstream = require "kong.plugins.azure-functions._upstream"


local kong = kong
local type = type
local pairs = pairs
local concat = table.concat
local fmt = string.format
local encode_base64 = ngx.encode_base64


local OpenFaaS = {
  PRIORITY = 749,
  VERSION = require("kong.meta").version,
}


--- The function's path on the gateway (without the suffix).
function OpenFaaS.function_path(conf)
  local name = conf.function_name
  if conf.namespace then
    name = name .. "." .. conf.namespace
  end
  return (conf.async and "/async-function/" or "/function/") .. name
end


--- The headers of the platform request.
-- client: the client's headers as upstream.forward_headers() gives them,
-- or false/nil when not forwarded; forwarded: { ip, host, proto } for the
-- X-Forwarded-* headers added to forwarded ones (For appended to the
-- client's, Host and Proto replaced: kong.request.get_forwarded_* already
-- take a trusted peer's values).
function OpenFaaS.build_headers(conf, client, forwarded)
  local h = {}
  for name, value in pairs(client or {}) do
    h[name] = value
  end
  if client then
    local xff = client["x-forwarded-for"]
    if type(xff) == "table" then
      xff = concat(xff, ", ")
    end
    h["x-forwarded-for"] = xff and (xff .. ", " .. forwarded.ip)
                           or forwarded.ip
    h["x-forwarded-host"] = forwarded.host
    h["x-forwarded-proto"] = forwarded.proto
  end
  -- callers never choose where the platform calls back
  h["x-callback-url"] = nil
  if conf.async and conf.callback_url then
    h["x-callback-url"] = conf.callback_url
  end
  if conf.basic_auth then
    h["authorization"] = "Basic " .. encode_base64(conf.basic_auth.username
                                                   .. ":"
                                                   .. conf.basic_auth.password)
  elseif conf.bearer_token then
    h["authorization"] = "Bearer " .. conf.bearer_token
  end
  return h
end


function OpenFaaS:access(conf)
  local path, err = upstream.target_path(OpenFaaS.function_path(conf),
                                         conf.forward_path)
  if not path then
    return kong.response.error(400, err)
  end

  local method = kong.request.get_method()
  local body = upstream.request_body(method)

  local client = conf.forward_headers and upstream.forward_headers()
  local headers = OpenFaaS.build_headers(conf, client, {
    ip = kong.client.get_forwarded_ip(),
    host = kong.request.get_forwarded_host(),
    proto = kong.request.get_forwarded_scheme(),
  })
  if not conf.forward_headers then
    -- the body still needs its type
    headers["content-type"] = kong.request.get_header("content-type")
  end

  return upstream.invoke(conf, {
    host = conf.host,
    port = conf.port,
    method = method,
    path = path,
    query = conf.forward_query and upstream.raw_query() or nil,
    headers = headers,
    body = body,
  }, fmt("could not invoke %s on %s:%d", path, conf.host, conf.port))
end


return OpenFaaS
