-- Test-side helpers for the SigV4 specs: the AWS suite reader (the rules of
-- shared/conformance/sigv4/README.md) and an independent, deliberately
-- plain SigV4 verifier written from the AWS algorithm, on top of
-- sluice.ngx.crypto (OpenSSL through the FFI; works under plain luajit).
-- It shares no code with the C signer or lua/sluice/aws/sigv4.lua.

local crypto = require "sluice.ngx.crypto"


local _M = {}


_M.AKID = "AKIDEXAMPLE"
_M.SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
_M.TIMESTAMP = 1440938160 -- 20150830T123600Z
_M.SKIP = "SKIP: AWS SigV4 suite not found (set SLUICE_SIGV4_SUITE)"


local function read(path)
  local f = io.open(path, "rb")
  if not f then
    return nil
  end
  local s = f:read("*a")
  f:close()
  return s
end
_M.read = read


--- The suite directory, or nil: $SLUICE_SIGV4_SUITE, else
-- <repo>/../shared/conformance/sigv4.
function _M.suite_dir(root)
  local dir = os.getenv("SLUICE_SIGV4_SUITE")
  if not dir or dir == "" then
    dir = root .. "/../shared/conformance/sigv4"
  end
  if read(dir .. "/get-vanilla/get-vanilla.req") then
    return dir
  end
  return nil
end


--- Every case: { name, dir } sorted by path (one level of nesting).
function _M.cases(dir)
  local out = {}
  local p = io.popen("find " .. ("%q"):format(dir) .. " -mindepth 2 -maxdepth 3"
                     .. " -name '*.req' | sort")
  for path in p:lines() do
    local d, name = path:match("^(.*)/([^/]+)%.req$")
    if d and d:match("[^/]+$") == name then
      out[#out + 1] = { name = name, dir = d,
                        rel = d:sub(#dir + 2) }
    end
  end
  p:close()
  return out
end


--- Parses a .req: request line split at the first and last space,
-- continuation lines joined with one space, the body after the first
-- empty line. Returns { method, path, query, headers = { {name, value} },
-- body }.
function _M.parse_req(text)
  local first_nl = text:find("\n", 1, true) or (#text + 1)
  local line = text:sub(1, first_nl - 1)
  local sp1 = line:find(" ", 1, true)
  local sp2 = #line - (line:reverse():find(" ", 1, true) or 0) + 1
  local target = line:sub(sp1 + 1, sp2 - 1)
  local q = target:find("?", 1, true)
  local r = {
    method = line:sub(1, sp1 - 1),
    path = q and target:sub(1, q - 1) or target,
    query = q and target:sub(q + 1) or "",
    headers = {},
    body = "",
  }
  local pos = first_nl + 1
  while pos <= #text do
    local nl = text:find("\n", pos, true) or (#text + 1)
    local l = text:sub(pos, nl - 1)
    if l == "" then
      r.body = text:sub(nl + 1)
      break
    end
    if l:match("^[ \t]") and #r.headers > 0 then
      local h = r.headers[#r.headers]
      h[2] = h[2] .. " " .. l
    else
      local c = l:find(":", 1, true)
      r.headers[#r.headers + 1] = { l:sub(1, c - 1), l:sub(c + 1) }
    end
    pos = nl + 1
  end
  return r
end


-- The independent verifier ------------------------------------------------

local function hex(s)
  return (s:gsub(".", function(c)
    return ("%02x"):format(c:byte())
  end))
end
_M.hex = hex


local function enc(s)
  return (s:gsub("[^A-Za-z0-9%-_%.~]", function(c)
    return ("%%%02X"):format(c:byte())
  end))
end


local function dec(s)
  return (s:gsub("%%(%x%x)", function(h)
    return string.char(tonumber(h, 16))
  end))
end


function _M.sha256_hex(s)
  return hex(crypto.sha256_bin(s))
end


--- Canonical URI: non-S3 paths are normalized and encoded (again).
function _M.canonical_uri(path, s3)
  if path == "" then
    return "/"
  end
  if s3 then
    local out = {}
    local i = 1
    while i <= #path do
      local c = path:sub(i, i)
      if c == "%" then
        local b = string.char(tonumber(path:sub(i + 1, i + 2), 16))
        out[#out + 1] = b == "/" and "%2F" or enc(b)
        i = i + 3
      else
        out[#out + 1] = c == "/" and "/" or enc(c)
        i = i + 1
      end
    end
    return table.concat(out)
  end
  local segs = {}
  for seg in path:gmatch("[^/]+") do
    if seg == ".." then
      segs[#segs] = nil
    elseif seg ~= "." then
      segs[#segs + 1] = enc(seg)
    end
  end
  local last = path:match("[^/]*$")
  local trailing = last == "" or last == "." or last == ".."
  local out = "/" .. table.concat(segs, "/")
  if trailing and #segs > 0 then
    out = out .. "/"
  end
  return out
end


function _M.canonical_query(query)
  local pairs_ = {}
  for piece in query:gmatch("[^&]+") do
    local k, v = piece:match("^([^=]*)=(.*)$")
    if not k then
      k, v = piece, ""
    end
    pairs_[#pairs_ + 1] = enc(dec(k)) .. "=" .. enc(dec(v))
  end
  table.sort(pairs_, function(a, b)
    local ka, va = a:match("^([^=]*)=(.*)$")
    local kb, vb = b:match("^([^=]*)=(.*)$")
    if ka ~= kb then
      return ka < kb
    end
    return va < vb
  end)
  return table.concat(pairs_, "&")
end


local function fold(v)
  return (v:gsub("^[ \t]+", ""):gsub("[ \t]+$", ""):gsub("[ \t]+", " "))
end


--- Canonical headers of `names` (lower-case) from `headers`: a map of
-- lower-case name -> value or array of values.
function _M.canonical_headers(headers, names)
  local lines = {}
  for _, n in ipairs(names) do
    local v = headers[n]
    if type(v) == "table" then
      local t = {}
      for i, x in ipairs(v) do
        t[i] = fold(x)
      end
      v = table.concat(t, ",")
    else
      v = fold(v or "")
    end
    lines[#lines + 1] = n .. ":" .. v .. "\n"
  end
  return table.concat(lines)
end


function _M.signing_key(secret, date8, region, service)
  local k = crypto.hmac_sha256("AWS4" .. secret, date8)
  k = crypto.hmac_sha256(k, region)
  k = crypto.hmac_sha256(k, service)
  return crypto.hmac_sha256(k, "aws4_request")
end


--- { canonical_request, string_to_sign, signature } for a request
-- description: method, path, query, headers (lower-case map), signed
-- (sorted lower-case names), payload (hash), amz_date, region, service,
-- secret, s3.
function _M.sign(d)
  local creq = table.concat({
    d.method,
    _M.canonical_uri(d.path, d.s3),
    _M.canonical_query(d.query or ""),
    _M.canonical_headers(d.headers, d.signed),
    table.concat(d.signed, ";"),
    d.payload,
  }, "\n")
  local scope = d.amz_date:sub(1, 8) .. "/" .. d.region .. "/" .. d.service
                .. "/aws4_request"
  local sts = "AWS4-HMAC-SHA256\n" .. d.amz_date .. "\n" .. scope .. "\n"
              .. _M.sha256_hex(creq)
  local key = _M.signing_key(d.secret, d.amz_date:sub(1, 8), d.region,
                             d.service)
  return {
    canonical_request = creq,
    string_to_sign = sts,
    signature = hex(crypto.hmac_sha256(key, sts)),
    scope = scope,
  }
end


--- Parses "AWS4-HMAC-SHA256 Credential=AK/scope, SignedHeaders=a;b,
-- Signature=hex" into { access_key, date8, region, service, signed = {},
-- signature }, or nil.
function _M.parse_authorization(v)
  local ak, date8, region, service, signed, sig = v:match(
    "^AWS4%-HMAC%-SHA256 Credential=([^/]+)/(%d+)/([^/]+)/([^/]+)"
    .. "/aws4_request, SignedHeaders=([^,]+), Signature=(%x+)$")
  if not ak then
    return nil
  end
  local names = {}
  for n in signed:gmatch("[^;]+") do
    names[#names + 1] = n
  end
  return { access_key = ak, date8 = date8, region = region,
           service = service, signed = names, signature = sig }
end


return _M
