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
  local path, err = upstream.target_path(target.path, conf.forward_path)
  if not path then
    return kong.response.error(400, err)
  end

  local method = kong.request.get_method()
  local body = upstream.request_body(method)

  local headers = upstream.forward_headers()
  if conf.apikey then
    headers["x-functions-key"] = conf.apikey
  end
  if conf.clientid then
    headers["x-functions-clientid"] = conf.clientid
  end

  return upstream.invoke(conf, {
    host = target.host,
    port = target.port,
    method = method,
    path = path,
    query = upstream.raw_query(),
    headers = headers,
    body = body,
  }, fmt("could not invoke %s:%d%s", target.host, target.port, path))
end


return Azure
