-- aws-lambda: answers the request with an AWS Lambda function (Kong's
-- PRIORITY 750). Two ways, chosen by the config (schema.lua):
--
-- * function_name: the Invoke API, as Kong.
--   POST <host>/2015-03-31/functions/<name>/invocations[?Qualifier=q],
--   SigV4-signed (service "lambda") with the credentials.lua chain, the
--   headers X-Amz-Invocation-Type, X-Amz-Log-Type and X-Amz-Client-Context
--   (client_context), the payload of request-util.lua. The answer:
--     - status: the function's statusCode with is_proxy_integration, else
--       unhandled_status when X-Amz-Function-Error is Unhandled, else
--       Lambda's (200 RequestResponse, 202 Event, 204 DryRun);
--     - headers: Lambda's (x-amzn-RequestId, X-Amz-Log-Result,
--       X-Amz-Executed-Version, X-Amz-Function-Error ...) but hop-by-hop,
--       Content-Length, Date and Server; then the function's own with
--       is_proxy_integration; Via when server_tokens are on;
--     - body: the function's output (legacy empty_arrays_mode re-encodes a
--       JSON body, so [] becomes {} as in Kong).
--   A malformed proxy response gives 502 {"message":"Bad Gateway","error":
--   "could not JSON decode Lambda function response: <why>"}. A Lambda API
--   error (>= 400: bad signature, unknown function, throttling) gives
--   Kong's 500, or Lambda's own status and body with
--   preserve_lambda_api_error_code.
-- * function_uri: APISIX's HTTP proxy to an API Gateway / function URL
--   (function-uri.lua).
-- Either way: 504 when the platform is slower than `timeout` ms, 502 when it
-- cannot be reached (Kong answers 500 to both).

local cjson = require "cjson.safe"
local kong_meta = require "kong.meta"
local util = require "kong.plugins.aws-lambda.util"
local apigw = require "kong.plugins.aws-lambda.apigw"
local credentials = require "kong.plugins.aws-lambda.credentials"
local request_util = require "kong.plugins.aws-lambda.request-util"
local function_uri = require "kong.plugins.aws-lambda.function-uri"


local type = type
local pairs = pairs
local ipairs = ipairs
local tostring = tostring
local getenv = os.getenv
local fmt = string.format
local find = string.find
local lower = string.lower
local match = string.match


-- a private cjson: empty tables encode as {} (Kong's legacy arrays)
local legacy_json = cjson.new()


local INVOKE_PATH = "/2015-03-31/functions/%s/invocations"

-- Lambda response headers the client does not get
local SKIP_RESPONSE = {
  ["content-length"] = true,
  ["date"] = true,
  ["server"] = true,
}
for k in pairs(util.HOP_BY_HOP) do
  SKIP_RESPONSE[k] = true
end


local AWSLambdaHandler = {
  PRIORITY = 750,
  VERSION = kong_meta.version,
}


local function env(name)
  local v = getenv(name)
  return v ~= "" and v or nil
end


local function region_of(conf)
  return conf.aws_region or env("AWS_REGION") or env("AWS_DEFAULT_REGION")
         or conf.host and match(conf.host, "^lambda%.([%w-]+)%.amazonaws%.com")
end


-- Via on: headers has server_tokens or via, or is not set at all
local via_enabled
local function via()
  if via_enabled == nil then
    local list = kong.configuration.headers
    if type(list) == "string" then
      list = { list }
    end
    via_enabled = list == nil
    for _, h in ipairs(list or {}) do
      h = lower(h)
      if h == "server_tokens" or h == "via" then
        via_enabled = true
      end
    end
  end
  if via_enabled then
    return "1.1 sluice/" .. require("sluice.core").version
  end
end


local function is_json(content_type)
  return type(content_type) == "string"
         and find(lower(content_type), "application/[%w.+-]*json") ~= nil
end


-- [] -> {} in a JSON body, as Kong's legacy mode does by re-encoding it
local function legacy_body(body)
  local t = legacy_json.decode(body)
  if type(t) ~= "table" then
    return body
  end
  return legacy_json.encode(t) or body
end


-- A Lambda API error (the function did not run): Kong's 500, or Lambda's
-- answer itself.
local function api_error(conf, res, headers)
  local t = cjson.decode(res.body or "")
  local message = type(t) == "table" and (t.Message or t.message) or res.body
  local kind = util.header(res.headers, "x-amzn-ErrorType")
               or type(t) == "table" and (t.Type or t.__type) or "?"
  kind = match(tostring(kind), "^[^:]*")
  kong.log.err("Lambda API answered ", res.status, " (", kind, "): ",
               tostring(message))
  if conf.preserve_lambda_api_error_code then
    return kong.response.exit(res.status, res.body, headers)
  end
  return kong.response.error(500)
end


local function invoke(conf)
  local region = region_of(conf)
  if not region then
    kong.log.err("no region specified")
    return kong.response.error(500)
  end
  if not conf.function_name then
    kong.log.err("no function_name configured")
    return kong.response.error(500)
  end

  local creds, err = credentials.get(conf, region)
  if not creds then
    kong.log.err("Credentials not found: ", err)
    return kong.response.error(500)
  end

  local payload
  payload, err = request_util.build_request_payload(conf)
  if not payload then
    kong.log.err(err)
    return kong.response.error(500)
  end

  local tls = not conf.disable_https
  local host = conf.host or fmt("lambda.%s.amazonaws.com", region)
  local path = fmt(INVOKE_PATH, util.escape(conf.function_name))
  local query = conf.qualifier and "Qualifier=" .. util.escape(conf.qualifier)
                or nil
  local headers = {
    ["Content-Type"] = "application/json",
    ["X-Amz-Invocation-Type"] = conf.invocation_type,
    ["X-Amz-Log-Type"] = conf.log_type,
  }
  if conf.client_context then
    headers["X-Amz-Client-Context"] = ngx.encode_base64(conf.client_context)
  end

  local sigv4 = require "sluice.aws.sigv4"
  local signed
  signed, err = sigv4.sign({
    method = "POST",
    host = host,
    port = conf.port,
    tls = tls,
    path = path,
    query = query or "",
    headers = headers,
    body = payload,
    region = region,
    service = "lambda",
    access_key = creds.access_key,
    secret_key = creds.secret_key,
    session_token = creds.session_token,
  })
  if not signed then
    kong.log.err("could not sign the Invoke request: ", err)
    return kong.response.error(500)
  end
  for k, v in pairs(signed) do
    headers[k] = v
  end

  local res, status
  res, err, status = util.request({
    scheme = tls and "https" or "http",
    host = host,
    port = conf.port,
    method = "POST",
    path = path,
    query = query,
    headers = headers,
    body = payload,
    timeout = conf.timeout,
    keepalive = conf.keepalive,
    ssl_verify = conf.ssl_verify,
    proxy_url = conf.proxy_url,
  })
  if not res then
    kong.log.err("invoking ", conf.function_name, " at ", host, ":",
                 conf.port, " failed: ", err)
    if status == 504 then
      return kong.response.error(504, "The Lambda function did not answer "
                                      .. "within " .. conf.timeout .. " ms")
    end
    return kong.response.error(502, "The Lambda service could not be "
                                    .. "reached")
  end
  ngx.ctx.KONG_WAITING_TIME = res.time

  local out = {}
  for k, v in pairs(res.headers) do
    if not SKIP_RESPONSE[lower(k)] then
      out[k] = v
    end
  end
  local v = via()
  if v then
    out["Via"] = v
  end

  if res.status >= 400 then
    return api_error(conf, res, out)
  end

  local function_error = util.header(res.headers, "X-Amz-Function-Error")
  local unhandled = function_error == "Unhandled" and conf.unhandled_status
  local status_code = res.status
  local body = res.body or ""

  if conf.is_proxy_integration and function_error then
    kong.log.err("the function failed (", function_error, "): ", body)
    status_code = unhandled or 502
  elseif conf.is_proxy_integration and res.status == 200 then
    local proxy, perr = apigw.extract_proxy_response(
      body, conf.awsgateway_compatible_payload_version)
    if not proxy then
      kong.log.err(perr)
      return kong.response.exit(502, {
        message = "Bad Gateway",
        error = "could not JSON decode Lambda function response: " .. perr,
      })
    end
    status_code = proxy.status
    body = proxy.body
    for k, x in pairs(proxy.headers) do
      local lk = lower(k)
      if not SKIP_RESPONSE[lk] then
        for ok in pairs(out) do
          if lower(ok) == lk then
            out[ok] = nil
          end
        end
        out[k] = x
      end
    end
  elseif unhandled then
    status_code = unhandled
  end

  if conf.empty_arrays_mode == "legacy"
     and is_json(util.header(out, "Content-Type"))
  then
    body = legacy_body(body)
  end

  return kong.response.exit(status_code, body, out)
end


function AWSLambdaHandler:access(conf)
  if conf.function_uri then
    return function_uri.access(conf)
  end
  return invoke(conf)
end


return AWSLambdaHandler
