-- The client request as aws-lambda sends it on (Kong's
-- `kong/plugins/aws-lambda/request-util.lua`):
--
--   request_util.read_request_body(skip_large_bodies)  body | nil
--   request_util.describe(conf)        the request as apigw.event reads it
--   request_util.build_request_payload(conf)   JSON text | nil, err
--   request_util.matched_path(route, path)     route path that matched,
--                                              and whether it is a regex
--
-- Payload rules (Kong's):
-- * awsgateway_compatible: the API Gateway proxy event (apigw.lua);
-- * any forward_request_*: an object with request_method, request_headers,
--   request_uri + request_uri_args, request_body + request_body_args as
--   asked; a body whose content type cannot be parsed is base64'd (and
--   request_body_base64 = true) unless it is text/plain, text/html,
--   application/xml, text/xml or application/soap+xml or
--   base64_encode_body is false;
-- * else: the query args merged with the parsed body args (body wins).
-- Bodies larger than client_body_buffer_size are not sent when
-- skip_large_bodies is on (Kong logs "request body was buffered to disk,
-- too large"); otherwise up to util.MAX_BODY bytes are read.

local cjson = require "cjson.safe"
local apigw = require "kong.plugins.aws-lambda.apigw"
local util = require "kong.plugins.aws-lambda.util"


local type = type
local pairs = pairs
local ipairs = ipairs
local tostring = tostring
local fmt = string.format
local sub = string.sub
local find = string.find
local lower = string.lower
local match = string.match


local _M = {}


-- bodies these content types carry are sent as text, never base64'd
local RAW_CONTENT_TYPES = {
  ["text/plain"] = true,
  ["text/html"] = true,
  ["application/xml"] = true,
  ["text/xml"] = true,
  ["application/soap+xml"] = true,
}


local TOO_LARGE = "request body was buffered to disk, too large"


local function media_type(ct)
  if type(ct) ~= "string" then
    return nil
  end
  return lower(match(ct, "^%s*([^;%s]+)") or "")
end


--- The client body, or nil when there is none to send (too large while
-- skip_large_bodies is on, or over util.MAX_BODY, or unreadable).
function _M.read_request_body(skip_large_bodies)
  local body, err
  if skip_large_bodies then
    body, err = kong.request.get_raw_body()
  else
    body, err = kong.request.get_raw_body(util.MAX_BODY)
  end
  if body then
    return body
  end
  if err and find(err, "client body buffer", 1, true) then
    kong.log.err(TOO_LARGE)
  else
    kong.log.err("could not read the request body: ", err)
  end
  return nil
end


--- The route path (prefix or regex, without its "~") the request path
-- matched, and true for a regex; nil when the route has no paths.
function _M.matched_path(route, path)
  if type(route) ~= "table" or type(route.paths) ~= "table" then
    return nil
  end
  local best
  for _, p in ipairs(route.paths) do
    if sub(p, 1, 1) == "~" then
      local re = sub(p, 2)
      if ngx.re.find(path, re, "jo") then
        return re, true
      end
    elseif sub(path, 1, #p) == p and (not best or #p > #best) then
      best = p
    end
  end
  return best, false
end


--- The client request as apigw.event reads it.
function _M.describe(conf)
  local req = kong.request
  local path = req.get_path()
  local resource, regex = _M.matched_path(kong.router.get_route(), path)
  local params = {}
  if regex then
    for k, v in pairs(req.get_uri_captures().named or {}) do
      if type(k) == "string" and v then
        params[k] = v
      end
    end
  end
  local headers = {}
  for k, v in pairs(req.get_headers()) do
    headers[lower(k)] = v
  end
  return {
    method = req.get_method(),
    path = path,
    raw_query = req.get_raw_query(),
    query = req.get_query(),
    headers = headers,
    body = _M.read_request_body(conf.skip_large_bodies),
    host = req.get_host(),
    client_ip = kong.client.get_forwarded_ip(),
    http_version = fmt("%.1f", req.get_http_version()),
    request_id = ngx.var.request_id,
    start_time = req.get_start_time(),
    resource = resource,
    path_parameters = params,
  }
end


local function forward_request(conf)
  local req = kong.request
  local out = {}
  if conf.forward_request_method then
    out.request_method = req.get_method()
  end
  if conf.forward_request_headers then
    out.request_headers = req.get_headers()
  end
  if conf.forward_request_uri then
    out.request_uri = req.get_path_with_query()
    out.request_uri_args = req.get_query()
  end
  if conf.forward_request_body then
    local raw = _M.read_request_body(conf.skip_large_bodies)
    local args, err = req.get_body()
    if err and find(err, "content type", 1, true) then
      args = {}
      local ct = media_type(req.get_header("content-type"))
      if raw and not RAW_CONTENT_TYPES[ct] and conf.base64_encode_body then
        raw = ngx.encode_base64(raw)
        out.request_body_base64 = true
      end
    end
    out.request_body = raw
    out.request_body_args = args
  end
  return out
end


--- The Invoke payload (JSON text) for the current request.
function _M.build_request_payload(conf)
  local payload
  if conf.awsgateway_compatible then
    payload = apigw.event(conf, _M.describe(conf))
  elseif conf.forward_request_method or conf.forward_request_uri
         or conf.forward_request_headers or conf.forward_request_body
  then
    payload = forward_request(conf)
  else
    local args = kong.request.get_body()
    payload = kong.table.merge(kong.request.get_query(), args)
  end
  local json, err = cjson.encode(payload)
  if not json then
    return nil, "could not JSON encode the upstream body: " .. tostring(err)
  end
  return json
end


return _M
