-- jwt-claims: the "classic Kong workshop" JWT plugin. It reads
-- `Authorization: Bearer <jwt>`, decodes the token's header and payload
-- (base64url JSON), verifies an HS256 signature when config.secret is set,
-- refuses a missing, malformed, badly signed or expired token with 401, and
-- copies the claim config.claim into the response header config.header and,
-- when set, into the upstream request header config.upstream_header.
--
-- 401 bodies (JSON, with `WWW-Authenticate: Bearer ...` as RFC 6750 asks):
--   no Authorization, or not a Bearer one    {"message":"Unauthorized"}
--   not three base64url JSON segments        {"message":"Bad token"}
--   secret set, header alg is not HS256      {"message":"Invalid algorithm"}
--   secret set, signature does not match     {"message":"Invalid signature"}
--   `exp` not a number                       {"message":"Bad token"}
--   exp + leeway <= now                      {"message":"token expired"}
--
-- A token without the claim passes without the headers. A claim that is not
-- a string is sent as its JSON text (numbers and booleans as written), and
-- one with control characters is not copied at all.
--
-- Portable between Kong and Sluice: base64url comes from lua-resty-core's
-- `ngx.base64` (Sluice provides the same module), HMAC-SHA256 from
-- Sluice's `sluice.ngx.crypto` (`hmac_sha256(key, data)`, OpenSSL's HMAC
-- through the FFI) or, on Kong, from `resty.openssl.hmac`.

local cjson = require "cjson.safe"
local base64 = require "ngx.base64"


local kong = kong
local ngx = ngx
local type = type
local byte = string.byte
local find = string.find
local sub = string.sub
local match = string.match
local bxor = require("bit").bxor
local bor = require("bit").bor
local decode_base64url = base64.decode_base64url
local json_decode = cjson.decode
local json_encode = cjson.encode
local null = ngx.null


local hmac_sha256
do
  local ok, crypto = pcall(require, "sluice.ngx.crypto")
  if ok then
    -- Sluice: OpenSSL's HMAC through the FFI, 32 raw bytes
    hmac_sha256 = crypto.hmac_sha256
  else
    -- Kong: lua-resty-openssl ships with it
    local openssl_hmac = require "resty.openssl.hmac"
    hmac_sha256 = function(key, data)
      local h = assert(openssl_hmac.new(key, "sha256"))
      return (h:final(data))
    end
  end
end


local UNAUTHORIZED = { message = "Unauthorized" }
local BAD_TOKEN = { message = "Bad token" }
local BAD_ALG = { message = "Invalid algorithm" }
local BAD_SIGNATURE = { message = "Invalid signature" }
local EXPIRED = { message = "token expired" }

local CHALLENGE = { ["WWW-Authenticate"] = 'Bearer realm="kong"' }
local INVALID_TOKEN = {
  ["WWW-Authenticate"] = 'Bearer realm="kong", error="invalid_token"',
}


local JwtClaimsHandler = {
  VERSION = "0.1.0",
  PRIORITY = 1449, -- with the authentication plugins, just after jwt (1450)
}


-- What follows `Bearer ` in Authorization (scheme case-insensitive,
-- surrounding blanks trimmed), or nil when there is nothing.
local function bearer_token()
  local auth = kong.request.get_header("authorization")
  if not auth then
    return nil
  end
  local token = match(auth, "^[Bb][Ee][Aa][Rr][Ee][Rr][ \t]+(.-)[ \t]*$")
  if token == "" then
    return nil
  end
  return token
end


-- A base64url JSON segment, decoded to a table; nil if it is anything else.
local function json_segment(s)
  local raw = decode_base64url(s)
  if not raw then
    return nil
  end
  local t = json_decode(raw)
  if type(t) ~= "table" then
    return nil
  end
  return t
end


-- Compares in time independent of where the strings differ.
local function equal_const_time(a, b)
  if #a ~= #b then
    return false
  end
  local diff = 0
  for i = 1, #a do
    diff = bor(diff, bxor(byte(a, i), byte(b, i)))
  end
  return diff == 0
end


-- header, payload, the signed input and the signature bytes; or nil
local function parse(token)
  local dot1 = find(token, ".", 1, true)
  local dot2 = dot1 and find(token, ".", dot1 + 1, true)
  if not dot2 or find(token, ".", dot2 + 1, true) then
    return nil
  end
  local header = json_segment(sub(token, 1, dot1 - 1))
  local payload = json_segment(sub(token, dot1 + 1, dot2 - 1))
  local signature = decode_base64url(sub(token, dot2 + 1))
  if not header or not payload or not signature then
    return nil
  end
  return header, payload, sub(token, 1, dot2 - 1), signature
end


-- The claim as a header value, or nil.
local function claim_value(v)
  if v == nil then
    return nil
  end
  if type(v) ~= "string" then
    v = json_encode(v)
    if not v then
      return nil
    end
  end
  if find(v, "%c") then
    kong.log.warn("claim with control characters not copied")
    return nil
  end
  return v
end


function JwtClaimsHandler:access(conf)
  local token = bearer_token()
  if not token then
    return kong.response.exit(401, UNAUTHORIZED, CHALLENGE)
  end

  local header, payload, signed, signature = parse(token)
  if not header then
    return kong.response.exit(401, BAD_TOKEN, INVALID_TOKEN)
  end

  local secret = conf.secret
  if secret and secret ~= null then
    if header.alg ~= "HS256" then
      return kong.response.exit(401, BAD_ALG, INVALID_TOKEN)
    end
    if not equal_const_time(hmac_sha256(secret, signed), signature) then
      return kong.response.exit(401, BAD_SIGNATURE, INVALID_TOKEN)
    end
  end

  local exp = payload.exp
  if exp ~= nil then
    if type(exp) ~= "number" then
      return kong.response.exit(401, BAD_TOKEN, INVALID_TOKEN)
    end
    if exp + (conf.leeway or 0) <= ngx.time() then
      return kong.response.exit(401, EXPIRED, INVALID_TOKEN)
    end
  end

  local value = claim_value(payload[conf.claim or "sub"])
  if not value then
    return
  end

  kong.response.set_header(conf.header or "X-Claim", value)
  local upstream_header = conf.upstream_header
  if upstream_header and upstream_header ~= null then
    kong.service.request.set_header(upstream_header, value)
  end
end


return JwtClaimsHandler
