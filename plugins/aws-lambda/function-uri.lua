-- APISIX's aws-lambda: the client request proxied to `function_uri` (an
-- API Gateway stage URL or a Lambda function URL), not the Invoke API.
--
-- * path: the path of function_uri, then the part of the request path
--   after the route's matched prefix (route /aws, request /aws/a/b ->
--   <function_uri path>/a/b), joined with one '/'; a regex route appends
--   its named capture `ext` (APISIX's `/aws/*` wildcard) when it has one;
-- * method, query (function_uri's args first), headers and body of the
--   client; hop-by-hop headers, Host and Content-Length are not copied
--   (Host is function_uri's host[:port]);
-- * authorization.apikey -> `x-api-key` unless the client sent one (then
--   no IAM signing, as APISIX);
-- * authorization.iam -> SigV4 (service `execute-api` by default, `lambda`
--   for function URLs) unless the client sent Authorization; host, the
--   x-amz-* headers and content-type are signed, the query string is sent
--   in its canonical form;
-- * the platform's status, headers (but hop-by-hop) and body go back;
--   504 when it is slower than `timeout`, 502 when it cannot be reached.

local util = require "kong.plugins.aws-lambda.util"
local request_util = require "kong.plugins.aws-lambda.request-util"


local type = type
local pairs = pairs
local ipairs = ipairs
local tostring = tostring
local select = select
local concat = table.concat
local sort = table.sort
local sub = string.sub
local gsub = string.gsub
local find = string.find
local lower = string.lower
local match = string.match
local gmatch = string.gmatch


local _M = {}


-- request headers never copied to the function
local SKIP_REQUEST = {
  ["host"] = true,
  ["content-length"] = true,
  ["expect"] = true,
}
for k in pairs(util.HOP_BY_HOP) do
  SKIP_REQUEST[k] = true
end

-- response headers left to the gateway
local SKIP_RESPONSE = {
  ["content-length"] = true,
  ["date"] = true,
  ["server"] = true,
}
for k in pairs(util.HOP_BY_HOP) do
  SKIP_RESPONSE[k] = true
end


--- base path + suffix with exactly one '/' between them.
function _M.join_path(base, suffix)
  if not suffix or suffix == "" or suffix == "/" then
    return base
  end
  suffix = gsub(suffix, "^/+", "")
  if sub(base, -1) == "/" then
    return base .. suffix
  end
  return base .. "/" .. suffix
end


--- The request path after the route's matched path.
function _M.path_suffix(route, path)
  local matched, regex = request_util.matched_path(route, path)
  if not matched then
    return ""
  end
  if regex then
    local named = kong.request.get_uri_captures().named
    return named and type(named.ext) == "string" and named.ext or ""
  end
  return sub(path, #matched + 1)
end


-- "a=1&b" pairs, decoded, in order
local function split_query(q, out)
  for pair in gmatch(q or "", "[^&]+") do
    local k, v = match(pair, "^([^=]*)=?(.*)$")
    if k ~= "" then
      out[#out + 1] = { ngx.unescape_uri(k),
                        find(pair, "=", 1, true) and ngx.unescape_uri(v)
                        or "" }
    end
  end
  return out
end


--- The canonical (SigV4) form of the query strings given: every name and
-- value escaped as AWS does, sorted by name then value.
function _M.canonical_query(...)
  local pairs_ = {}
  for i = 1, select("#", ...) do
    split_query(select(i, ...), pairs_)
  end
  local items = {}
  for i, kv in ipairs(pairs_) do
    items[i] = { util.escape(kv[1]), util.escape(kv[2]) }
  end
  sort(items, function(a, b)
    if a[1] == b[1] then
      return a[2] < b[2]
    end
    return a[1] < b[1]
  end)
  local out = {}
  for i, kv in ipairs(items) do
    out[i] = kv[1] .. "=" .. kv[2]
  end
  return concat(out, "&")
end


local function sign_iam(iam, u, method, path, query, headers, body)
  local sigv4 = require "sluice.aws.sigv4"
  -- sign only what no hop changes: content-type and x-amz-*
  local to_sign = {}
  for k, v in pairs(headers) do
    local lk = lower(k)
    if lk == "content-type" or sub(lk, 1, 6) == "x-amz-" then
      to_sign[k] = v
    end
  end
  local signed, err = sigv4.sign({
    method = method,
    host = u.host,
    port = u.port,
    tls = u.scheme == "https",
    path = path,
    query = query,
    headers = to_sign,
    body = body,
    region = iam.aws_region or "us-east-1",
    service = iam.service or "execute-api",
    access_key = iam.accesskey,
    secret_key = iam.secretkey,
  })
  if not signed then
    return nil, err
  end
  for k, v in pairs(signed) do
    headers[k] = v
  end
  return true
end


--- The access handler of the function_uri way.
function _M.access(conf)
  local u, err = util.parse_url(conf.function_uri)
  if not u then
    kong.log.err("invalid function_uri: ", err)
    return kong.response.error(500)
  end

  local req = kong.request
  local method = req.get_method()
  local path = _M.join_path(u.path,
                            _M.path_suffix(kong.router.get_route(),
                                           req.get_path()))
  local query = _M.canonical_query(u.query, req.get_raw_query())

  local body
  body, err = req.get_raw_body(util.MAX_BODY)
  if not body then
    kong.log.err("could not read the request body: ", err)
    if find(tostring(err), "client body buffer", 1, true) then
      return kong.response.error(413, "Request body too large")
    end
    return kong.response.error(400)
  end

  local headers = {}
  local client_auth, client_apikey
  for k, v in pairs(req.get_headers()) do
    local lk = lower(k)
    if not SKIP_REQUEST[lk] then
      headers[lk] = v
      if lk == "authorization" then
        client_auth = true
      elseif lk == "x-api-key" then
        client_apikey = true
      end
    end
  end

  local auth = conf.authorization
  local apikey = auth and auth.apikey
  local iam = auth and auth.iam
  if apikey and not client_apikey then
    headers["x-api-key"] = apikey
  elseif iam and not client_auth and not client_apikey then
    local ok
    ok, err = sign_iam(iam, u, method, path, query, headers, body)
    if not ok then
      kong.log.err("could not sign the request: ", err)
      return kong.response.error(500)
    end
  end

  local res, status
  res, err, status = util.request({
    scheme = u.scheme,
    host = u.host,
    port = u.port,
    method = method,
    path = path,
    query = query ~= "" and query or nil,
    headers = headers,
    body = body,
    timeout = conf.timeout,
    keepalive = conf.keepalive,
    ssl_verify = conf.ssl_verify,
    proxy_url = conf.proxy_url,
  })
  if not res then
    kong.log.err("calling ", u.scheme, "://", u.host, ":", u.port, " failed: ",
                 err)
    if status == 504 then
      return kong.response.error(504, "The function did not answer within "
                                      .. tostring(conf.timeout) .. " ms")
    end
    return kong.response.error(502, "The function could not be reached")
  end
  ngx.ctx.KONG_WAITING_TIME = res.time

  local out = {}
  for k, v in pairs(res.headers) do
    if not SKIP_RESPONSE[lower(k)] then
      out[k] = v
    end
  end
  return kong.response.exit(res.status, res.body, out)
end


return _M
