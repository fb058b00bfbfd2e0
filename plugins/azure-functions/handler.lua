-- azure-functions: invokes an Azure Functions HTTP trigger and answers with
-- the function's response (Kong's plugin, PRIORITY 749). The request goes
-- to
--
--   <method> http(s)://<appname>.<hostdomain>[:port]
--            /<routeprefix>/<functionname>[/<suffix>][?<query>]
--
-- with the client's method, raw query, headers (Host and hop-by-hop ones
-- dropped) and body, plus x-functions-key (apikey) and
-- x-functions-clientid (clientid), which replace the client's. The suffix
-- is the request path after what the route matched (`forward_path`, a
-- Sluice extension; Kong >= 3.6 never appends it). The port is 443 or 80
-- by `https` unless the `port` extension says otherwise.
--
-- The function's status, headers and body go back as they are, with Via
-- appended. Azure unreachable or its TLS failing: 502; no answer within
-- `timeout`: 504 (Kong's JSON messages; Kong itself answers 500). The call
-- runs on cosockets (resty.http): the worker never blocks.

local upstream = require "kong.plugins.azure-functions._upstream"


local kong = kong
local setmetatable = setmetatable
local fmt = string.format
local match = string.match


local VIA = "1.1 " .. upstream.SERVER_TOKENS


local Azure = {
  PRIORITY = 749,
  VERSION = require("kong.meta").version,
}


-- config table -> { host, port, path }, computed once per config
local targets = setmetatable({}, { __mode = "k" })


--- host, port and function path of a config.
function Azure.target(conf)
  local t = targets[conf]
  if t then
    return t
  end
  local fn = match(conf.functionname or "", "^/*(.-)/*$")
  local prefix = match(conf.routeprefix or "", "^/*(.-)/*$")
  local path = prefix ~= "" and ("/" .. prefix .. "/" .. fn) or ("/" .. fn)
  t = {
    host = conf.appname .. "." .. conf.hostdomain,
    port = conf.port or (conf.https and 443 or 80),
    path = upstream.escape_path(path),
  }
  targets[conf] = t
  return t
end


function Azure:access(conf)
  local target = Azure.target(conf)
  local path = target.path
  if conf.forward_path then
    local suffix, err = upstream.path_suffix()
    if not suffix then
      return kong.response.error(400, err)
    end
    path = upstream.join_path(path, suffix)
  end

  local method = kong.request.get_method()
  local body = upstream.read_body()
  if body == "" and method ~= "POST" and method ~= "PUT"
     and method ~= "PATCH"
  then
    body = nil
  end

  local headers = upstream.forward_headers()
  if conf.apikey then
    headers["x-functions-key"] = conf.apikey
  end
  if conf.clientid then
    headers["x-functions-clientid"] = conf.clientid
  end

  local query = kong.request.get_raw_query()
  if query == "" then
    query = nil
  end

  local res, err = upstream.call({
    https = conf.https,
    host = target.host,
    port = target.port,
    ssl_verify = conf.https_verify,
    timeout = conf.timeout,
    keepalive = conf.keepalive,
    method = method,
    path = path,
    query = query,
    headers = headers,
    body = body,
  })
  if not res then
    return upstream.fail(fmt("could not invoke %s:%d%s", target.host,
                             target.port, path), err)
  end
  return upstream.relay(res.status, res.headers, res.body, VIA)
end


return Azure
