-- API Gateway's Lambda proxy formats, both ways:
--
--   apigw.event(conf, req)            the proxy event (payload 1.0 or 2.0)
--   apigw.extract_proxy_response(s)   { status, headers, body } | nil, err
--
-- `req` is a plain description of the client request (request-util.lua
-- fills it from the PDK; specs build it by hand):
--   { method, path, raw_query, query (decoded), headers (lower-case names,
--     string or array values), body (string or nil), body_base64 (true if
--     `body` still has to be base64'd), host, client_ip, http_version,
--     request_id, start_time (ms), resource (the matched route path),
--     path_parameters }
--
-- 1.0 follows Kong's aws-serializer: first values in `headers` and
-- `queryStringParameters`, all in the multiValue* fields, named regex
-- captures as pathParameters, the body base64'd unless base64_encode_body
-- is false or it is empty. 2.0 follows API Gateway HTTP APIs: cookies in
-- `cookies`, repeated headers and query args joined with ',', routeKey and
-- stage "$default", the rawPath and rawQueryString.

local cjson = require "cjson.safe"


local type = type
local pairs = pairs
local ipairs = ipairs
local next = next
local tonumber = tonumber
local tostring = tostring
local concat = table.concat
local match = string.match
local gmatch = string.gmatch
local lower = string.lower
local floor = math.floor
local os_date = os.date
local null = cjson.null


local _M = {}


local function first(v)
  if type(v) == "table" then
    return v[1]
  end
  return v
end


local function all(v)
  if type(v) == "table" then
    return v
  end
  return { v }
end


-- a valueless query arg (`?flag`) reads as "" as API Gateway gives it
local function arg_value(v)
  if v == true then
    return ""
  end
  return tostring(v)
end


local function arg_values(v)
  local out = {}
  for i, x in ipairs(all(v)) do
    out[i] = arg_value(x)
  end
  return out
end


local function body_fields(conf, req)
  local body = req.body
  if body == nil then
    return null, false
  end
  if req.body_base64 ~= false and conf.base64_encode_body and body ~= "" then
    return ngx.encode_base64(body), true
  end
  return body, false
end


local function user_agent(req)
  return first(req.headers["user-agent"]) or null
end


local function domain_prefix(host)
  return match(host or "", "^([^.]*)") or ""
end


local function v1(conf, req)
  local headers, multi_headers = {}, {}
  for k, v in pairs(req.headers) do
    headers[k] = first(v)
    multi_headers[k] = all(v)
  end
  local query, multi_query = {}, {}
  for k, v in pairs(req.query or {}) do
    query[k] = arg_value(first(v))
    multi_query[k] = arg_values(v)
  end
  local body, is_base64 = body_fields(conf, req)
  local start = req.start_time
  return {
    version = "1.0",
    resource = req.resource or req.path,
    path = req.path,
    httpMethod = req.method,
    headers = headers,
    multiValueHeaders = multi_headers,
    pathParameters = req.path_parameters or {},
    queryStringParameters = query,
    multiValueQueryStringParameters = multi_query,
    stageVariables = null,
    body = body,
    isBase64Encoded = is_base64,
    requestContext = {
      path = req.path,
      protocol = "HTTP/" .. req.http_version,
      httpMethod = req.method,
      domainName = req.host,
      domainPrefix = domain_prefix(req.host),
      identity = {
        sourceIp = req.client_ip,
        userAgent = user_agent(req),
      },
      requestId = req.request_id,
      requestTime = os_date("!%d/%b/%Y:%H:%M:%S +0000", floor(start / 1000)),
      requestTimeEpoch = start,
      resourcePath = req.resource or req.path,
    },
  }
end


local function v2(conf, req)
  local headers, cookies = {}, {}
  for k, v in pairs(req.headers) do
    if k == "cookie" then
      for _, line in ipairs(all(v)) do
        for c in gmatch(line, "[^;]+") do
          c = match(c, "^%s*(.-)%s*$")
          if c ~= "" then
            cookies[#cookies + 1] = c
          end
        end
      end
    else
      headers[k] = concat(all(v), ",")
    end
  end
  local query = {}
  for k, v in pairs(req.query or {}) do
    query[k] = concat(arg_values(v), ",")
  end
  local body, is_base64 = body_fields(conf, req)
  local start = req.start_time
  local event = {
    version = "2.0",
    routeKey = "$default",
    rawPath = req.path,
    rawQueryString = req.raw_query or "",
    headers = headers,
    queryStringParameters = next(query) and query or null,
    pathParameters = req.path_parameters and next(req.path_parameters)
                     and req.path_parameters or null,
    stageVariables = null,
    body = body,
    isBase64Encoded = is_base64,
    requestContext = {
      accountId = "anonymous",
      apiId = domain_prefix(req.host),
      domainName = req.host,
      domainPrefix = domain_prefix(req.host),
      http = {
        method = req.method,
        path = req.path,
        protocol = "HTTP/" .. req.http_version,
        sourceIp = req.client_ip,
        userAgent = user_agent(req),
      },
      requestId = req.request_id,
      routeKey = "$default",
      stage = "$default",
      time = os_date("!%d/%b/%Y:%H:%M:%S +0000", floor(start / 1000)),
      timeEpoch = start,
    },
  }
  if #cookies > 0 then
    event.cookies = cookies
  end
  return event
end


--- The proxy event for the client request `req`, as a Lua table.
function _M.event(conf, req)
  if conf.awsgateway_compatible_payload_version == "2.0" then
    return v2(conf, req)
  end
  return v1(conf, req)
end


local function valid_status(v)
  local n = tonumber(v)
  if type(v) ~= "number" and type(v) ~= "string" or not n
     or n ~= floor(n) or n < 100 or n > 599
  then
    return nil
  end
  return n
end


local function header_value(v)
  if type(v) == "table" then
    local out = {}
    for i, x in ipairs(v) do
      out[i] = tostring(x)
    end
    return out
  end
  return tostring(v)
end


--- The function's answer read as an API Gateway proxy response:
-- { statusCode (100-599, number or numeric string), headers? (object),
--   multiValueHeaders? (object or null, wins over headers), body?
--   (string), isBase64Encoded? (boolean) } (with payload 2.0 also
-- cookies? (array), each one a Set-Cookie).
-- Returns { status, headers, body } or nil and why it is not one.
function _M.extract_proxy_response(content, payload_version)
  if type(content) ~= "string" then
    return nil, "response is not a string"
  end
  local t, err = cjson.decode(content)
  if t == nil then
    return nil, tostring(err)
  end
  if type(t) ~= "table" then
    return nil, "response is not a JSON object"
  end
  local status = valid_status(t.statusCode)
  if not status then
    return nil, "statusCode validation failed"
  end
  if t.headers ~= nil and t.headers ~= null and type(t.headers) ~= "table"
  then
    return nil, "headers must be a table"
  end
  local mvh = t.multiValueHeaders
  if mvh ~= nil and mvh ~= null and type(mvh) ~= "table" then
    return nil, "multiValueHeaders must be a table"
  end
  if t.body ~= nil and t.body ~= null and type(t.body) ~= "string" then
    return nil, "body must be a string"
  end
  if t.isBase64Encoded ~= nil and type(t.isBase64Encoded) ~= "boolean" then
    return nil, "isBase64Encoded must be a boolean"
  end

  local headers = {}
  if type(t.headers) == "table" then
    for k, v in pairs(t.headers) do
      if type(k) == "string" then
        headers[k] = header_value(v)
      end
    end
  end
  if type(mvh) == "table" then
    for k, v in pairs(mvh) do
      if type(k) == "string" then
        headers[k] = header_value(v)
      end
    end
  end
  if payload_version == "2.0" and type(t.cookies) == "table" then
    local set = {}
    for _, c in ipairs(t.cookies) do
      set[#set + 1] = tostring(c)
    end
    if #set > 0 then
      headers["Set-Cookie"] = set
    end
  end

  local body = type(t.body) == "string" and t.body or ""
  if t.isBase64Encoded then
    local raw = ngx.decode_base64(body)
    if not raw then
      return nil, "body is not valid base64"
    end
    body = raw
  end
  return { status = status, headers = headers, body = body }
end


return _M
