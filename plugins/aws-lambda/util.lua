-- Small helpers shared by the aws-lambda modules: AWS's URI encoding, URL
-- and ISO-8601 parsing, the INI files of ~/.aws, the XML answers of STS,
-- and one HTTP exchange over resty.http bounded by a deadline.
--
--   util.escape(s)                 RFC 3986 unreserved kept, the rest %XX
--   util.parse_url(url)            { scheme, host, port, path, query }
--   util.parse_iso8601(s)          epoch seconds | nil
--   util.parse_ini(text)           { section = { key = value } }
--   util.xml_value(xml, tag)       text of the first <tag>...</tag>
--   util.request(opts)             res | nil, err, status (502 | 504)

local type = type
local pairs = pairs
local tonumber = tonumber
local tostring = tostring
local byte = string.byte
local char = string.char
local fmt = string.format
local gsub = string.gsub
local match = string.match
local lower = string.lower
local gmatch = string.gmatch
local floor = math.floor


local _M = {}


local DEFAULT_PORTS = { http = 80, https = 443 }


--- AWS's URI encoding: every byte but A-Z a-z 0-9 - _ . ~ as upper-case
-- %XX (so ':' and '$' of ARNs and qualifiers are escaped).
function _M.escape(s)
  return (gsub(tostring(s), "[^%w%-_%.~]", function(c)
    return fmt("%%%02X", byte(c))
  end))
end


--- scheme://[userinfo@]host[:port][/path][?query] -> table, or nil, err.
-- IPv6 hosts keep their brackets off: "[::1]" gives host "::1".
function _M.parse_url(url)
  if type(url) ~= "string" then
    return nil, "url must be a string"
  end
  local scheme, rest = match(url, "^(%a[%w+.-]*)://(.*)$")
  if not scheme then
    return nil, "missing scheme in url '" .. url .. "'"
  end
  scheme = lower(scheme)
  local authority, tail = match(rest, "^([^/?#]*)(.*)$")
  authority = gsub(authority, "^.*@", "")
  local host, port = match(authority, "^%[([^%]]+)%]:?(%d*)$")
  if not host then
    host, port = match(authority, "^([^:]*):?(%d*)$")
  end
  if not host or host == "" then
    return nil, "missing host in url '" .. url .. "'"
  end
  local path, query = match(tail, "^([^?#]*)%??([^#]*)")
  return {
    scheme = scheme,
    host = host,
    port = tonumber(port) or DEFAULT_PORTS[scheme],
    path = path ~= "" and path or "/",
    query = query ~= "" and query or nil,
  }
end


-- days since 1970-01-01 of a civil date (proleptic Gregorian)
local function days_from_civil(y, m, d)
  if m <= 2 then
    y = y - 1
  end
  local era = floor(y / 400)
  local yoe = y - era * 400
  local mp = (m + 9) % 12
  local doy = floor((153 * mp + 2) / 5) + d - 1
  local doe = yoe * 365 + floor(yoe / 4) - floor(yoe / 100) + doy
  return era * 146097 + doe - 719468
end


--- "2024-05-01T12:34:56Z", with optional fraction and a Z or +hh:mm
-- offset, to epoch seconds; nil when it is not such a date.
function _M.parse_iso8601(s)
  if type(s) ~= "string" then
    return nil
  end
  local y, mo, d, h, mi, sec, rest =
    match(s, "^%s*(%d%d%d%d)%-(%d%d)%-(%d%d)[Tt ](%d%d):(%d%d):(%d%d)(.*)$")
  if not y then
    return nil
  end
  rest = gsub(rest, "^%.%d+", "")
  local offset = 0
  if not match(rest, "^[Zz]?%s*$") then
    local sign, oh, om = match(rest, "^([+-])(%d%d):?(%d%d)%s*$")
    if not sign then
      return nil
    end
    offset = (tonumber(oh) * 3600 + tonumber(om) * 60)
             * (sign == "+" and 1 or -1)
  end
  local days = days_from_civil(tonumber(y), tonumber(mo), tonumber(d))
  return days * 86400 + tonumber(h) * 3600 + tonumber(mi) * 60
         + tonumber(sec) - offset
end


--- The INI format of ~/.aws/credentials: [section] headers, key = value
-- lines, '#' and ';' comments. Keys are lower-cased.
function _M.parse_ini(text)
  local out, section = {}, nil
  for line in gmatch((text or "") .. "\n", "([^\n]*)\n") do
    line = match(line, "^%s*(.-)%s*$")
    if line ~= "" and not match(line, "^[#;]") then
      local name = match(line, "^%[%s*(.-)%s*%]$")
      if name then
        section = out[name] or {}
        out[name] = section
      elseif section then
        local k, v = match(line, "^([^=]-)%s*=%s*(.*)$")
        if k and k ~= "" then
          section[lower(k)] = v
        end
      end
    end
  end
  return out
end


local XML_ENTITIES = {
  amp = "&", lt = "<", gt = ">", quot = '"', apos = "'",
}

local function xml_unescape(s)
  return (gsub(s, "&(#?x?)(%w+);", function(kind, name)
    if kind == "" then
      return XML_ENTITIES[name]
    end
    local n = tonumber(name, kind == "#x" and 16 or 10)
    return n and n < 128 and char(n) or nil
  end))
end


--- The text of the first <tag>...</tag> (entities decoded), or nil.
function _M.xml_value(xml, tag)
  if type(xml) ~= "string" then
    return nil
  end
  local v = match(xml, "<" .. tag .. "[^>]*>(.-)</" .. tag .. ">")
  return v and xml_unescape(match(v, "^%s*(.-)%s*$"))
end


-- Request bodies over this are not sent (memory bound per request).
_M.MAX_BODY = 8 * 1024 * 1024


-- hop-by-hop headers: never relayed (RFC 9110 7.6.1)
_M.HOP_BY_HOP = {
  ["connection"] = true,
  ["keep-alive"] = true,
  ["proxy-connection"] = true,
  ["proxy-authenticate"] = true,
  ["proxy-authorization"] = true,
  ["te"] = true,
  ["trailer"] = true,
  ["transfer-encoding"] = true,
  ["upgrade"] = true,
}


local function now_ms()
  ngx.update_time()
  return ngx.now() * 1000
end


--- A timeout error of the cosockets or of resty.http.
local function is_timeout(err)
  return type(err) == "string" and (err == "timeout"
         or match(err, "timed? ?out") ~= nil)
end
_M.is_timeout = is_timeout


--- One HTTP exchange, all of it within opts.timeout ms:
-- opts = { scheme, host, port, method, path, query (string), headers,
--          body, timeout, keepalive (ms idle; nil/false closes),
--          ssl_verify, server_name, proxy_url }
-- Returns { status, headers, body, time (ms) }, or nil, err, status where
-- status is 504 for a timeout and 502 for any other transport failure.
function _M.request(opts)
  local http = require "resty.http"
  local timeout = opts.timeout or 60000
  local started = now_ms()
  local deadline = started + timeout

  local httpc = http.new()
  httpc:set_timeouts(timeout, timeout, timeout)

  local connect = {
    scheme = opts.scheme,
    host = opts.host,
    port = opts.port,
    ssl_verify = opts.ssl_verify ~= false,
    ssl_server_name = opts.server_name or opts.host,
  }
  if opts.proxy_url then
    connect.proxy_opts = {
      http_proxy = opts.proxy_url,
      https_proxy = opts.proxy_url,
    }
  end
  local ok, err = httpc:connect(connect)
  if not ok then
    return nil, "could not connect: " .. tostring(err),
           is_timeout(err) and 504 or 502
  end

  local left = deadline - now_ms()
  if left < 1 then
    httpc:close()
    return nil, "timeout", 504
  end
  httpc:set_timeouts(left, left, left)

  local res
  res, err = httpc:request({
    method = opts.method or "GET",
    path = opts.path or "/",
    query = opts.query,
    headers = opts.headers,
    body = opts.body,
  })
  if not res then
    httpc:close()
    return nil, "request failed: " .. tostring(err),
           is_timeout(err) and 504 or 502
  end

  local body
  body, err = res:read_body()
  if not body then
    httpc:close()
    return nil, "could not read the response: " .. tostring(err),
           is_timeout(err) and 504 or 502
  end

  if opts.keepalive then
    local kok = httpc:set_keepalive(opts.keepalive)
    if not kok then
      httpc:close()
    end
  else
    httpc:close()
  end

  local headers = {}
  for k, v in pairs(res.headers or {}) do
    headers[k] = v
  end
  return {
    status = res.status,
    headers = headers,
    body = body,
    time = now_ms() - started,
  }
end


--- The first value of a header in a table whose names may be in any case.
function _M.header(headers, name)
  if not headers then
    return nil
  end
  local v = headers[name]
  if v == nil then
    name = lower(name)
    for k, x in pairs(headers) do
      if lower(k) == name then
        v = x
        break
      end
    end
  end
  if type(v) == "table" then
    v = v[1]
  end
  return v
end


return _M
