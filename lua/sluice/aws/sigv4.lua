--- AWS Signature Version 4 for plugins, over the C signer (core/aws/sl_sigv4).
--
--   local sigv4 = require "sluice.aws.sigv4"
--   local headers, err = sigv4.sign(opts)      -- a new headers table
--   local url, err = sigv4.presign(opts)       -- a presigned URL
--   local parts, err = sigv4.debug_sign(opts)  -- every stage, for tests
--   local q, err = sigv4.canonical_query(q)    -- the query string to send
--
-- opts: method ("GET"), host, port (the scheme's default), tls (true), path
-- ("/", the raw path as it will be sent), query (string or table), headers
-- (table; a value may be an array for a repeated header), body (""), region,
-- service, access_key, secret_key, session_token, timestamp (epoch seconds,
-- default ngx.time()), unsigned_payload (false), normalize_path (true, false
-- for s3), content_sha256_header (false); presign: expires (900).
-- Also session_token_after (false): add the token after signing (unsigned),
-- as a few services want.
--
-- Signed: Host (with :port unless it is the scheme's default), X-Amz-Date,
-- X-Amz-Security-Token, X-Amz-Content-Sha256 when asked, and every given
-- header except the hop-by-hop ones no signer should cover (connection,
-- expect, keep-alive, proxy-*, te, trailer, transfer-encoding, upgrade,
-- user-agent, x-amzn-trace-id): those are returned unsigned.
-- A string query is signed in its canonical form ('+' is a literal plus):
-- send canonical_query(query) to be sure the server sees what was signed.
--
-- Bad input gives nil and a message that starts with the field's name; no
-- function here raises for bad input. The C signer is reached through
-- ffi.C, so these run inside the gateway; under plain luajit they return
-- nil, "sigv4: ... not available".

local ffi = require "ffi"
local C = require "sluice.ffi.cdefs"


local ffi_new = ffi.new
local ffi_string = ffi.string
local type = type
local pairs = pairs
local ipairs = ipairs
local pcall = pcall
local tostring = tostring
local tonumber = tonumber
local floor = math.floor
local lower = string.lower
local upper = string.upper
local byte = string.byte
local char = string.char
local find = string.find
local format = string.format
local gsub = string.gsub
local sort = table.sort
local concat = table.concat


-- the flags of sl_ffi_sigv4_sign (SL_SIGV4_* in core/aws/sl_sigv4.h)
local FLAG_S3 = 1
local FLAG_UNSIGNED_PAYLOAD = 2
local FLAG_CONTENT_SHA256 = 4
local FLAG_TOKEN_AFTER = 8
local FLAG_PRESIGN = 16

local MAX_HEADERS = 64            -- SL_SIGV4_MAX_HEADERS
local MAX_EXPIRES = 604800
local DEFAULT_EXPIRES = 900
local MAX_EPOCH = 253402300799    -- 9999-12-31T23:59:59Z

-- never signed: a hop may change them (botocore's list), and our own
local UNSIGNABLE = {
  ["connection"] = true,
  ["expect"] = true,
  ["keep-alive"] = true,
  ["proxy-authenticate"] = true,
  ["proxy-authorization"] = true,
  ["te"] = true,
  ["trailer"] = true,
  ["transfer-encoding"] = true,
  ["upgrade"] = true,
  ["user-agent"] = true,
  ["x-amzn-trace-id"] = true,
}

local REQUIRED = { "region", "service", "access_key", "secret_key" }
local BOOLEANS = { "unsigned_payload", "normalize_path",
                   "content_sha256_header", "session_token_after" }

local NOT_AVAILABLE = "sigv4: the C signer is not available "
                      .. "(sl_ffi_sigv4_sign; run inside sluice)"


local available = pcall(function()
  return C.sl_ffi_sigv4_sign
end)


local _M = {}


-- C inputs and outputs, reused: an FFI call cannot yield, and nothing
-- between filling them and the call can either.
local cin, cout, chdrs, errbuf
local ERRLEN = 256
local caps = { creq = 0, authz = 0, query = 0 }
local bufs = {}
local STS_CAP = 512

if available then
  cin = ffi_new("sl_ffi_sigv4_in_t")
  cout = ffi_new("sl_ffi_sigv4_out_t")
  chdrs = ffi_new("sl_ffi_sigv4_header_t[?]", MAX_HEADERS)
  errbuf = ffi_new("char[?]", ERRLEN)
  bufs.sts = ffi_new("char[?]", STS_CAP)
end


local function ensure(name, n)
  if caps[name] < n then
    local cap = 4096
    while cap < n do
      cap = cap * 2
    end
    bufs[name] = ffi_new("char[?]", cap)
    caps[name] = cap
  end
end


local function encode(s)
  return (gsub(s, "[^%w%-%._~]", function(c)
    return format("%%%02X", byte(c))
  end))
end


-- percent-decoding; nil when a '%' does not start %XX
local function decode(s)
  if not find(s, "%", 1, true) then
    return s
  end
  if find(s, "%%%X") or find(s, "%%.%X") or find(s, "%%.?$") then
    return nil
  end
  return (gsub(s, "%%(%x%x)", function(h)
    return char(tonumber(h, 16))
  end))
end


local function is_int(v, min, max)
  return type(v) == "number" and v == floor(v) and v >= min and v <= max
end


local function scalar(v)
  local t = type(v)
  if t == "string" then
    return v
  end
  if t == "number" then
    return tostring(v)
  end
  return nil
end


-- "k=v&..." from a query table: names sorted, values in array order;
-- true means a name without a value, false is skipped
local function query_from_table(q)
  local names = {}
  for k in pairs(q) do
    if type(k) ~= "string" then
      return nil, "query: names must be strings, got " .. type(k)
    end
    names[#names + 1] = k
  end
  sort(names)
  local out = {}
  for _, k in ipairs(names) do
    local v = q[k]
    local values = type(v) == "table" and v or { v }
    for _, x in ipairs(values) do
      if x == true then
        out[#out + 1] = encode(k) .. "="
      elseif x ~= false then
        local s = scalar(x)
        if not s then
          return nil, "query: value of '" .. k .. "' must be a string, "
                      .. "number or boolean, got " .. type(x)
        end
        out[#out + 1] = encode(k) .. "=" .. encode(s)
      end
    end
  end
  return concat(out, "&")
end


local function query_string(q)
  if q == nil then
    return ""
  end
  if type(q) == "string" then
    if find(q, "^%?") then
      q = q:sub(2)
    end
    return q
  end
  if type(q) == "table" then
    return query_from_table(q)
  end
  return nil, "query: string or table expected, got " .. type(q)
end


local function opt_string(opts, name, required)
  local v = opts[name]
  if v == nil then
    if required then
      return nil, name .. ": required"
    end
    return nil
  end
  if type(v) ~= "string" then
    return nil, name .. ": string expected, got " .. type(v)
  end
  if required and v == "" then
    return nil, name .. ": required"
  end
  return v
end


local function opt_bool(opts, name)
  local v = opts[name]
  if v ~= nil and type(v) ~= "boolean" then
    return nil, name .. ": boolean expected, got " .. type(v)
  end
  return v
end


-- Validates opts into a flat request description `r`; nil, err on bad
-- input. presign: also reads expires.
local function prepare(opts, presign)
  if type(opts) ~= "table" then
    return nil, "opts: table expected, got " .. type(opts)
  end
  local r = {}
  local err

  local method = opts.method
  if method == nil then
    method = "GET"
  elseif type(method) ~= "string" or method == "" then
    return nil, "method: non-empty string expected"
  end
  r.method = upper(method)

  r.host, err = opt_string(opts, "host", true)
  if err then
    return nil, err
  end
  if find(r.host, "[%s%c/?#@]") then
    return nil, "host: invalid character"
  end
  if find(r.host, ":", 1, true) and not find(r.host, "^%[[%x:.]+%]$") then
    return nil, "host: must not hold a port (use port)"
  end

  local tls = opts.tls
  if tls == nil then
    tls = true
  elseif type(tls) ~= "boolean" then
    return nil, "tls: boolean expected, got " .. type(tls)
  end
  r.tls = tls
  local port = opts.port
  if type(port) == "string" and find(port, "^%d+$") then
    port = tonumber(port)
  end
  if port ~= nil and not is_int(port, 1, 65535) then
    return nil, "port: integer 1-65535 expected"
  end
  local default_port = tls and 443 or 80
  r.authority = (port == nil or port == default_port) and r.host
                or (r.host .. ":" .. port)

  local path = opts.path
  if path == nil or path == "" then
    path = "/"
  elseif type(path) ~= "string" then
    return nil, "path: string expected, got " .. type(path)
  end
  r.path = path

  r.query, err = query_string(opts.query)
  if not r.query then
    return nil, err
  end

  local body = opts.body
  if body == nil then
    body = ""
  elseif type(body) ~= "string" then
    return nil, "body: string expected, got " .. type(body)
  end
  r.body = body

  for _, name in ipairs(REQUIRED) do
    r[name], err = opt_string(opts, name, true)
    if err then
      return nil, err
    end
  end
  r.session_token, err = opt_string(opts, "session_token")
  if err then
    return nil, err
  end
  if r.session_token == "" then
    r.session_token = nil
  end

  local ts = opts.timestamp
  if ts == nil then
    ts = ngx and ngx.time and ngx.time() or os.time()
  elseif type(ts) ~= "number" or ts ~= ts or ts < 0 or ts > MAX_EPOCH then
    return nil, "timestamp: epoch seconds expected"
  end
  r.timestamp = floor(ts)

  local b = {}
  for _, name in ipairs(BOOLEANS) do
    b[name], err = opt_bool(opts, name)
    if err then
      return nil, err
    end
  end
  local flags = 0
  if b.unsigned_payload then
    flags = flags + FLAG_UNSIGNED_PAYLOAD
  end
  if b.normalize_path == false
     or (b.normalize_path == nil and r.service == "s3")
  then
    flags = flags + FLAG_S3
  end
  if b.content_sha256_header and not presign then
    flags = flags + FLAG_CONTENT_SHA256
  end
  r.token_after = b.session_token_after and r.session_token ~= nil
  if r.token_after then
    flags = flags + FLAG_TOKEN_AFTER
  end
  if presign then
    flags = flags + FLAG_PRESIGN
    local e = opts.expires
    if e == nil then
      e = DEFAULT_EXPIRES
    elseif not is_int(e, 1, MAX_EXPIRES) then
      return nil, "expires: integer 1-" .. MAX_EXPIRES .. " expected"
    end
    r.expires = e
  end
  r.flags = flags

  -- headers: `out` keeps every given one, `signed` (name, value pairs)
  -- what goes to the signer
  local headers = opts.headers
  if headers ~= nil and type(headers) ~= "table" then
    return nil, "headers: table expected, got " .. type(headers)
  end
  local out, names, values = {}, {}, {}
  local n = 0
  local has_host = false
  local sha256_hdr = (flags % 8) >= FLAG_CONTENT_SHA256
  if headers then
    for k, val in pairs(headers) do
      if type(k) ~= "string" then
        return nil, "headers: names must be strings, got " .. type(k)
      end
      local lk = lower(k)
      -- ours replace the caller's
      local replaced = lk == "authorization"
                       or (lk == "x-amz-date" and not presign)
                       or (lk == "x-amz-security-token" and r.session_token)
                       or (lk == "x-amz-content-sha256" and sha256_hdr)
      if not replaced then
        local signable = not UNSIGNABLE[lk]
        -- an array value is a repeated header
        local list = type(val) == "table" and val or { val }
        local copy = {}
        for i, x in ipairs(list) do
          local s = scalar(x)
          if not s then
            return nil, "headers: value of '" .. k .. "' must be a "
                        .. "string or number, got " .. type(x)
          end
          copy[i] = s
          if signable then
            n = n + 1
            names[n], values[n] = k, s
          end
        end
        if #copy == 0 then
          return nil, "headers: value of '" .. k .. "' is empty"
        end
        out[k] = list == val and copy or copy[1]
        if lk == "host" then
          has_host = true
        end
      end
    end
  end
  if not has_host then
    out.Host = r.authority
    names[#names + 1] = "Host"
    values[#values + 1] = r.authority
  end
  if #names > MAX_HEADERS then
    return nil, "headers: more than " .. MAX_HEADERS .. " to sign"
  end
  r.out, r.names, r.values = out, names, values
  return r
end


-- Runs the C signer on `r`. true, or nil, err.
local function run(r)
  if not available then
    return nil, NOT_AVAILABLE
  end

  local hdr_bytes = 0
  local names, values = r.names, r.values
  local n = #names
  for i = 1, n do
    local h = chdrs[i - 1]
    local name, value = names[i], values[i]
    h.name = name
    h.name_len = #name
    h.value = value
    h.value_len = #value
    hdr_bytes = hdr_bytes + #name + #value
  end

  -- an upper bound of every output (see workspace_size in sl_sigv4.c);
  -- a too small buffer is still reported and retried below
  local token_len = r.session_token and #r.session_token or 0
  local need = 3 * (#r.path + #r.query + hdr_bytes + token_len
                    + #r.access_key + #r.region + #r.service)
               + 2 * hdr_bytes + 8 * n + 1024
  ensure("creq", need)
  ensure("authz", need)
  ensure("query", need)

  for _ = 1, 2 do
    cin.method = r.method
    cin.method_len = #r.method
    cin.path = r.path
    cin.path_len = #r.path
    cin.query = r.query
    cin.query_len = #r.query
    cin.headers = chdrs
    cin.nheaders = n
    cin.body = r.body
    cin.body_len = #r.body
    cin.region = r.region
    cin.region_len = #r.region
    cin.service = r.service
    cin.service_len = #r.service
    cin.access_key = r.access_key
    cin.access_key_len = #r.access_key
    cin.secret_key = r.secret_key
    cin.secret_key_len = #r.secret_key
    cin.session_token = r.session_token
    cin.session_token_len = token_len
    cin.timestamp = r.timestamp
    cin.flags = r.flags
    cin.expires = r.expires or 0

    cout.creq = bufs.creq
    cout.creq_cap = caps.creq
    cout.sts = bufs.sts
    cout.sts_cap = STS_CAP
    cout.authz = bufs.authz
    cout.authz_cap = caps.authz
    cout.query = bufs.query
    cout.query_cap = caps.query

    errbuf[0] = 0
    if C.sl_ffi_sigv4_sign(cin, cout, errbuf, ERRLEN) == 0 then
      return true
    end
    local grow = false
    for name, field in pairs({ creq = "creq_len", authz = "authz_len",
                               query = "query_len" }) do
      local len = tonumber(cout[field])
      if len > caps[name] then
        ensure(name, len)
        grow = true
      end
    end
    if not grow then
      break
    end
  end
  return nil, ffi_string(errbuf)
end


-- prepare() and run(): the signed request `r`, or nil, err
local function signed(opts, presign)
  local r, err = prepare(opts, presign)
  if not r then
    return nil, err
  end
  local ok
  ok, err = run(r)
  if not ok then
    return nil, err
  end
  return r
end


-- the canonical request's last line: the payload hash
local function payload_hash()
  local p, n = cout.creq, tonumber(cout.creq_len)
  local i = n
  while i > 0 and p[i - 1] ~= 10 do
    i = i - 1
  end
  return ffi_string(p + i, n - i)
end


-- r.out completed with what sign() adds
local function finish_headers(r)
  local out = r.out
  out["X-Amz-Date"] = ffi_string(cout.amz_date, 16)
  if r.session_token then
    out["X-Amz-Security-Token"] = r.session_token
  end
  if r.flags % 8 >= FLAG_CONTENT_SHA256 then
    out["X-Amz-Content-Sha256"] = payload_hash()
  end
  out.Authorization = ffi_string(cout.authz, cout.authz_len)
  return out
end


local function url_of(r, query)
  return (r.tls and "https://" or "http://") .. r.authority .. r.path
         .. (query ~= "" and ("?" .. query) or "")
end


--- Signs a request in the Authorization-header form.
-- @tparam table opts see the top of this file
-- @treturn table|nil a new headers table: the given headers plus Host (when
-- absent), X-Amz-Date, X-Amz-Security-Token (with a token),
-- X-Amz-Content-Sha256 (when asked) and Authorization
-- @treturn string|nil the error, naming the bad field
-- @usage local h, err = sigv4.sign({ method = "POST", host = ..., ... })
function _M.sign(opts)
  local r, err = signed(opts, false)
  if not r then
    return nil, err
  end
  return finish_headers(r)
end


--- A presigned URL (X-Amz-* query parameters, X-Amz-Signature last).
-- @tparam table opts see the top of this file; expires in seconds (900)
-- @treturn string|nil scheme://host[:port]path?query
-- @treturn string|nil the error, naming the bad field
-- @usage local url = sigv4.presign({ host = "b.s3.amazonaws.com", ... })
function _M.presign(opts)
  local r, err = signed(opts, true)
  if not r then
    return nil, err
  end
  return url_of(r, ffi_string(cout.query, cout.query_len))
end


--- Every stage of a signature, for tests and troubleshooting.
-- With opts.presign = true, the presigned form (and `url`).
-- @treturn table|nil { canonical_request, string_to_sign, signature,
-- authorization, canonical_query, amz_date, headers (what sign returns) or
-- url (presign) }
-- @treturn string|nil the error
function _M.debug_sign(opts)
  local presign = type(opts) == "table" and opts.presign == true
  local r, err = signed(opts, presign)
  if not r then
    return nil, err
  end
  local parts = {
    canonical_request = ffi_string(cout.creq, cout.creq_len),
    string_to_sign = ffi_string(cout.sts, cout.sts_len),
    signature = ffi_string(cout.signature, 64),
    authorization = ffi_string(cout.authz, cout.authz_len),
    amz_date = ffi_string(cout.amz_date, 16),
    payload_hash = payload_hash(),
  }
  local query = ffi_string(cout.query, cout.query_len)
  if presign then
    parts.url = url_of(r, query)
    parts.canonical_query = (gsub(query, "&?X%-Amz%-Signature=.*$", ""))
  else
    parts.canonical_query = query
    parts.headers = finish_headers(r)
  end
  return parts
end


--- The canonical form of a query (string or table): what SigV4 signs and
-- what to send. Pure Lua; works outside the gateway too.
-- @treturn string|nil the query without '?'
-- @treturn string|nil the error
function _M.canonical_query(q)
  local s, err = query_string(q)
  if not s then
    return nil, err
  end
  local params = {}
  for piece in s:gmatch("[^&]+") do
    local eq = find(piece, "=", 1, true)
    local k = eq and piece:sub(1, eq - 1) or piece
    local v = eq and piece:sub(eq + 1) or ""
    local dk, dv = decode(k), decode(v)
    if not dk or not dv or find(piece, "[%z\r\n#]") then
      return nil, "query: bad percent-encoding or character in '"
                  .. piece .. "'"
    end
    params[#params + 1] = { encode(dk), encode(dv) }
  end
  sort(params, function(a, b)
    if a[1] ~= b[1] then
      return a[1] < b[1]
    end
    return a[2] < b[2]
  end)
  for i, p in ipairs(params) do
    params[i] = p[1] .. "=" .. p[2]
  end
  return concat(params, "&")
end


--- Signing-key cache counters of this worker: hits, misses, entries.
function _M.cache_stats()
  if not available then
    return nil, NOT_AVAILABLE
  end
  local h = ffi_new("double[1]")
  local m = ffi_new("double[1]")
  local e = ffi_new("int[1]")
  C.sl_ffi_sigv4_cache_stats(h, m, e)
  return { hits = h[0], misses = m[0], entries = e[0] }
end


--- Empties this worker's signing-key cache (keys are wiped).
function _M.cache_clear()
  if available then
    C.sl_ffi_sigv4_cache_clear()
  end
end


return _M
