-- A pure-Lua SigV4 signer, the baseline of bench/sigv4.sh: the way Lua
-- gateways usually sign (string building with gsub/format/concat, a
-- table.sort, and the digest/HMAC primitives the runtime offers: here
-- sluice.ngx.crypto's sha256_bin / hmac_sha256 over OpenSSL). It caches the
-- signing key per (secret, date, region, service) like the C signer, so
-- both are compared in the same steady state.
--
-- Bench-only: sign(opts) takes the opts of sluice.aws.sigv4.sign for the
-- cases the bench uses (header form, no S3, no presign) and returns the
-- same headers table; bench/sigv4/bench.lua checks that both agree.

local crypto = require "sluice.ngx.crypto"


local sha256_bin = crypto.sha256_bin
local hmac = crypto.hmac_sha256
local byte = string.byte
local format = string.format
local gsub = string.gsub
local lower = string.lower
local upper = string.upper
local sub = string.sub
local find = string.find
local concat = table.concat
local sort = table.sort
local pairs = pairs
local ipairs = ipairs
local type = type
local tostring = tostring
local tonumber = tonumber
local date = os.date
local char = string.char


local UNSIGNABLE = {
  ["connection"] = true, ["expect"] = true, ["keep-alive"] = true,
  ["proxy-authenticate"] = true, ["proxy-authorization"] = true,
  ["te"] = true, ["trailer"] = true, ["transfer-encoding"] = true,
  ["upgrade"] = true, ["user-agent"] = true, ["x-amzn-trace-id"] = true,
}


local _M = {}


local function hex(s)
  return (gsub(s, ".", function(c)
    return format("%02x", byte(c))
  end))
end


local function encode(s)
  return (gsub(s, "[^%w%-%._~]", function(c)
    return format("%%%02X", byte(c))
  end))
end


local function decode(s)
  return (gsub(s, "%%(%x%x)", function(h)
    return char(tonumber(h, 16))
  end))
end


local function canonical_uri(path)
  local segs = {}
  for seg in path:gmatch("[^/]+") do
    if seg == ".." then
      segs[#segs] = nil
    elseif seg ~= "." then
      segs[#segs + 1] = encode(seg)
    end
  end
  local last = path:match("[^/]*$")
  local uri = "/" .. concat(segs, "/")
  if #segs > 0 and (last == "" or last == "." or last == "..") then
    uri = uri .. "/"
  end
  return uri
end


local function query_cmp(a, b)
  if a[1] ~= b[1] then
    return a[1] < b[1]
  end
  return a[2] < b[2]
end


local function canonical_query(q)
  if type(q) == "table" then
    local parts = {}
    for k, v in pairs(q) do
      parts[#parts + 1] = encode(k) .. "=" .. encode(tostring(v))
    end
    q = concat(parts, "&")
  end
  local params = {}
  for piece in (q or ""):gmatch("[^&]+") do
    local eq = find(piece, "=", 1, true)
    local k = eq and sub(piece, 1, eq - 1) or piece
    local v = eq and sub(piece, eq + 1) or ""
    params[#params + 1] = { encode(decode(k)), encode(decode(v)) }
  end
  sort(params, query_cmp)
  for i, p in ipairs(params) do
    params[i] = p[1] .. "=" .. p[2]
  end
  return concat(params, "&")
end


local function trim_fold(v)
  v = gsub(v, "^[ \t]+", "")
  v = gsub(v, "[ \t]+$", "")
  return (gsub(v, "[ \t]+", " "))
end


local key_cache = {}
local key_cache_n = 0


local function signing_key(secret, day, region, service)
  local id = secret .. "\0" .. day .. "\0" .. region .. "\0" .. service
  local k = key_cache[id]
  if k then
    return k
  end
  k = hmac("AWS4" .. secret, day)
  k = hmac(k, region)
  k = hmac(k, service)
  k = hmac(k, "aws4_request")
  if key_cache_n >= 16 then
    key_cache, key_cache_n = {}, 0
  end
  key_cache[id] = k
  key_cache_n = key_cache_n + 1
  return k
end


function _M.sign(opts)
  local tls = opts.tls ~= false
  local port = opts.port
  local host = opts.host
  if port and port ~= (tls and 443 or 80) then
    host = host .. ":" .. port
  end
  local amz_date = date("!%Y%m%dT%H%M%SZ", opts.timestamp)
  local day = sub(amz_date, 1, 8)

  local out = {}
  local canon = {}
  local has_host = false
  for k, v in pairs(opts.headers or {}) do
    out[k] = v
    local lk = lower(k)
    if lk == "host" then
      has_host = true
    end
    if not UNSIGNABLE[lk] then
      canon[lk] = trim_fold(v)
    end
  end
  if not has_host then
    out.Host = host
    canon.host = host
  end
  canon["x-amz-date"] = amz_date
  out["X-Amz-Date"] = amz_date
  if opts.session_token then
    canon["x-amz-security-token"] = opts.session_token
    out["X-Amz-Security-Token"] = opts.session_token
  end

  local names = {}
  for k in pairs(canon) do
    names[#names + 1] = k
  end
  sort(names)
  local lines = {}
  for i, k in ipairs(names) do
    lines[i] = k .. ":" .. canon[k] .. "\n"
  end
  local signed = concat(names, ";")

  local creq = concat({
    upper(opts.method or "GET"),
    canonical_uri(opts.path or "/"),
    canonical_query(opts.query),
    concat(lines),
    signed,
    hex(sha256_bin(opts.body or "")),
  }, "\n")
  local scope = day .. "/" .. opts.region .. "/" .. opts.service
                .. "/aws4_request"
  local sts = "AWS4-HMAC-SHA256\n" .. amz_date .. "\n" .. scope .. "\n"
              .. hex(sha256_bin(creq))
  local key = signing_key(opts.secret_key, day, opts.region, opts.service)
  out.Authorization = "AWS4-HMAC-SHA256 Credential=" .. opts.access_key
                      .. "/" .. scope .. ", SignedHeaders=" .. signed
                      .. ", Signature=" .. hex(hmac(key, sts))
  return out
end


return _M
