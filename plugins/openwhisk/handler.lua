-- openwhisk: invokes an Apache OpenWhisk action with the request's
-- parameters and answers with the action's response (Kong/kong-plugin-
-- openwhisk). Only POST is accepted (405 otherwise). The parameters are the
-- query arguments merged with the decoded body (params.lua); they are sent
-- as a JSON object to
--
--   POST <path>/actions/<action>?blocking=true&result=<result>&timeout=<wait>
--
-- with `Authorization: Basic base64(service_token)`. <wait>, how long
-- OpenWhisk holds the call before answering 202, is `timeout` minus a
-- margin (a tenth, at most 1 s), so that its 202 reaches the gateway
-- before the gateway's own read timeout (Kong sends `timeout` itself).
-- The action's status, headers and body go back to the client, with
-- Via: kong/<version> (Kong's form for this plugin), and these mappings:
--   - 202 (the activation did not finish within the blocking wait): 504
--     with the activation id (in the body and X-Openwhisk-Activation-Id);
--   - a 200/202/502 body that is not JSON: 502;
--   - the platform unreachable or the TLS handshake failing: 502; no answer
--     within `timeout`: 504 (Kong's messages, through kong.response.error).
-- The call runs on cosockets (resty.http): the worker never blocks.

local cjson = require "cjson.safe"
local upstream = require "kong.plugins.azure-functions._upstream"
local params = require "kong.plugins.openwhisk.params"


local kong = kong
local type = type
local floor = math.floor
local min = math.min
local max = math.max
local tostring = tostring
local sub = string.sub
local gsub = string.gsub
local fmt = string.format
local concat = table.concat
local encode_base64 = ngx.encode_base64
local escape_uri = ngx.escape_uri


local MAX_WAIT_MESSAGE = "The action did not complete within the timeout"


local OpenWhisk = {
  PRIORITY = 1000,
  VERSION = "1.0.0",
}


--- OpenWhisk's blocking wait for a plugin timeout (ms): a little shorter.
function OpenWhisk.blocking_wait(timeout)
  local margin = min(1000, floor(timeout / 10))
  return max(1, floor(timeout) - margin)
end


--- "<path>/actions/<action>", each action segment escaped.
function OpenWhisk.action_path(conf)
  local path = gsub(conf.path, "/+$", "")
  if sub(path, 1, 1) ~= "/" then
    path = "/" .. path
  end
  local segments = {}
  for name in (conf.action .. "/"):gmatch("([^/]*)/") do
    segments[#segments + 1] = escape_uri(name)
  end
  return path .. "/actions/" .. concat(segments, "/")
end


--- The answer for an OpenWhisk response.
-- @return status, body, headers (headers to relay as they are); or nil,
--   err when the response is invalid
function OpenWhisk.map_response(status, headers, body)
  if status == 200 or status == 202 or status == 502 then
    local decoded = cjson.decode(body or "")
    if type(decoded) ~= "table" then
      return nil, "invalid JSON in the OpenWhisk response (status "
                  .. status .. ")"
    end
    if status == 202 then
      local id = type(decoded.activationId) == "string"
                 and decoded.activationId or nil
      return 504, { message = MAX_WAIT_MESSAGE, activationId = id },
             { ["X-Openwhisk-Activation-Id"] = id }
    end
  end
  return status, body or "", headers
end


function OpenWhisk:access(conf)
  if kong.request.get_method() ~= "POST" then
    return kong.response.exit(405, { message = "Method not allowed" })
  end

  local body = upstream.read_body()
  local args, status, err = params.collect(kong.request.get_query(),
                                           kong.request.get_header(
                                             "content-type"),
                                           body, ngx.decode_args)
  if not args then
    return kong.response.exit(status, { message = err })
  end

  local headers = {
    ["Content-Type"] = "application/json",
    ["Accept"] = "application/json",
  }
  if conf.service_token then
    headers["Authorization"] = "Basic " .. encode_base64(conf.service_token)
  end

  local res, cerr = upstream.call({
    https = conf.https,
    host = conf.host,
    port = conf.port,
    ssl_verify = conf.https_verify,
    timeout = conf.timeout,
    keepalive = conf.keepalive,
    method = "POST",
    path = OpenWhisk.action_path(conf),
    query = "blocking=true&result=" .. tostring(conf.result)
            .. "&timeout=" .. OpenWhisk.blocking_wait(conf.timeout),
    headers = headers,
    body = cjson.encode(args),
  })
  if not res then
    return upstream.fail(fmt("could not invoke the action at %s:%d",
                             conf.host, conf.port), cerr)
  end

  local rstatus, rbody, rheaders = OpenWhisk.map_response(res.status,
                                                          res.headers,
                                                          res.body)
  if not rstatus then
    kong.log.err(rbody)
    return kong.response.error(502)
  end
  return upstream.relay(rstatus, rheaders, rbody, upstream.SERVER_TOKENS)
end


return OpenWhisk
