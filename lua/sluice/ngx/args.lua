-- URI escaping and query-string coding for the ngx shim.
--
-- Provides ngx.escape_uri, ngx.unescape_uri, ngx.encode_args and
-- ngx.decode_args with lua-nginx-module's semantics:
--  * escape_uri(s, type?) uses lua-nginx-module's escape tables, type 0 (URI)
--    to 6 (mail_auth), default 2 (URI component: everything but ALPHA, DIGIT
--    and - . _ ~ ! * ' ( ) is escaped), upper-case hex.
--  * unescape_uri decodes %XX (either case) and '+' to a space; a '%' not
--    followed by two hex digits is kept as is.
--  * encode_args walks the table with pairs() (so the order is the table's),
--    escapes keys and values as URI components, repeats the key for array
--    values, writes a bare key for true and skips false.
--  * decode_args splits on '&', then on the first '=', unescapes both sides,
--    turns a bare key into true, repeated keys into arrays, drops empty keys
--    and stops after max_args pairs (default 100, 0 = unlimited), returning
--    "truncated" as a second value then.

local ffi = require "ffi"
local bit = require "bit"


local ffi_new = ffi.new
local ffi_str = ffi.string
local ffi_cast = ffi.cast
local band = bit.band
local rshift = bit.rshift
local lshift = bit.lshift
local byte = string.byte
local sub = string.sub
local type = type
local tostring = tostring
local pairs = pairs
local concat = table.concat
local error = error


local DEFAULT_MAX_ARGS = 100
local ESCAPE_URI_COMPONENT = 2
local MAX_ESCAPE_TYPE = 6

-- lua-nginx-module's escape bitmaps (ngx_http_lua_escape_uri), by type:
-- 0 uri, 1 args, 2 uri component, 3 html, 4 refresh, 5 memcached,
-- 6 mail_auth (same as memcached); eight 32-bit words cover bytes 0..255
local ESCAPE_MAPS = {
  [0] = { 0xffffffff, 0x80000029, 0x00000000, 0x80000000,
          0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff },
  [1] = { 0xffffffff, 0x80000829, 0x00000000, 0x80000000,
          0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff },
  [2] = { 0xffffffff, 0xfc00987d, 0x78000001, 0xb8000001,
          0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff },
  [3] = { 0xffffffff, 0x000000ad, 0x00000000, 0x80000000,
          0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff },
  [4] = { 0xffffffff, 0x00000085, 0x00000000, 0x80000000,
          0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff },
  [5] = { 0xffffffff, 0x00000021, 0x00000000, 0x00000000,
          0x00000000, 0x00000000, 0x00000000, 0x00000000 },
  [6] = { 0xffffffff, 0x00000021, 0x00000000, 0x00000000,
          0x00000000, 0x00000000, 0x00000000, 0x00000000 },
}

local HEX_UPPER = "0123456789ABCDEF"
local PERCENT = 37  -- '%'
local PLUS = 43     -- '+'
local SPACE = 32
local AMP = 38      -- '&'
local EQUAL = 61    -- '='


local uint8_ptr = ffi.typeof("const uint8_t *")
local hex_upper = ffi_new("uint8_t[16]", { byte(HEX_UPPER, 1, 16) })

-- hex digit value + 1 by byte, 0 when not a hex digit
local hex_val = ffi_new("uint8_t[256]")
for i = 0, 9 do
  hex_val[48 + i] = i + 1
end
for i = 0, 5 do
  hex_val[65 + i] = i + 11
  hex_val[97 + i] = i + 11
end

-- escape flags: escape_flags[type][byte] == 1 when the byte is escaped
local escape_flags = {}
for t = 0, MAX_ESCAPE_TYPE do
  local words = ESCAPE_MAPS[t]
  local flags = ffi_new("uint8_t[256]")
  for c = 0, 255 do
    local w = words[rshift(c, 5) + 1]
    if band(w, lshift(1, band(c, 31))) ~= 0 then
      flags[c] = 1
    end
  end
  escape_flags[t] = flags
end


local _M = {}


local scratch_size = 4096
local scratch = ffi_new("uint8_t[?]", scratch_size)


local function get_scratch(n)
  if n > scratch_size then
    local size = scratch_size
    while size < n do
      size = size * 2
    end
    scratch = ffi_new("uint8_t[?]", size)
    scratch_size = size
  end
  return scratch
end


local function escape(s, flags)
  local len = #s
  local src = ffi_cast(uint8_ptr, s)
  local n = 0
  for i = 0, len - 1 do
    n = n + flags[src[i]]
  end
  if n == 0 then
    return s
  end

  local dst = get_scratch(len + 2 * n)
  local d = 0
  for i = 0, len - 1 do
    local c = src[i]
    if flags[c] == 1 then
      dst[d] = PERCENT
      dst[d + 1] = hex_upper[rshift(c, 4)]
      dst[d + 2] = hex_upper[band(c, 15)]
      d = d + 3
    else
      dst[d] = c
      d = d + 1
    end
  end
  return ffi_str(dst, d)
end


-- lua-nginx-module's ngx_http_lua_unescape_uri, component flavour
local function unescape(s)
  local len = #s
  local src = ffi_cast(uint8_ptr, s)
  local i = 0
  while i < len do
    local c = src[i]
    if c == PERCENT or c == PLUS then
      break
    end
    i = i + 1
  end
  if i == len then
    return s
  end

  local dst = get_scratch(len)
  local d = 0
  i = 0
  while i < len do
    local c = src[i]
    if c == PERCENT then
      local h, l = 0, 0
      if len - i > 2 then
        h = hex_val[src[i + 1]]
        l = hex_val[src[i + 2]]
      end
      if h ~= 0 and l ~= 0 then
        dst[d] = (h - 1) * 16 + l - 1
        i = i + 3
      else
        dst[d] = PERCENT
        i = i + 1
      end
    elseif c == PLUS then
      dst[d] = SPACE
      i = i + 1
    else
      dst[d] = c
      i = i + 1
    end
    d = d + 1
  end
  return ffi_str(dst, d)
end


local function to_str(s)
  if type(s) ~= "string" then
    if not s then
      return ""
    end
    return tostring(s)
  end
  return s
end


--- Percent-encode `s` (ngx.escape_uri). `esc_type` 0..6, default 2.
function _M.escape_uri(s, esc_type)
  s = to_str(s)
  if esc_type == nil then
    esc_type = ESCAPE_URI_COMPONENT
  elseif type(esc_type) ~= "number" then
    error("\"type\" is not a number", 2)
  elseif esc_type < 0 or esc_type > MAX_ESCAPE_TYPE
         or esc_type % 1 ~= 0
  then
    error("\"type\" " .. tostring(esc_type) .. " out of range", 2)
  end
  return escape(s, escape_flags[esc_type])
end


--- Decode %XX escapes and '+' (ngx.unescape_uri).
function _M.unescape_uri(s)
  return unescape(to_str(s))
end


local component_flags = escape_flags[ESCAPE_URI_COMPONENT]


local function add_pair(parts, n, ekey, v)
  local tv = type(v)
  if tv == "string" or tv == "number" then
    n = n + 1
    parts[n] = ekey .. "=" .. escape(tostring(v), component_flags)
  elseif v == true then
    n = n + 1
    parts[n] = ekey
  elseif v ~= false then
    error("attempt to use " .. tv .. " as query arg value", 3)
  end
  return n
end


--- Build a query string from a table (ngx.encode_args).
function _M.encode_args(args)
  if type(args) ~= "table" then
    error("bad argument #1 to 'encode_args' (table expected, got "
          .. type(args) .. ")", 2)
  end

  local parts = {}
  local n = 0
  for k, v in pairs(args) do
    if type(k) ~= "string" then
      error("attempt to use a non-string key in the \"args\" option table",
            2)
    end
    local ekey = escape(k, component_flags)
    if type(v) == "table" then
      for _, item in pairs(v) do
        n = add_pair(parts, n, ekey, item)
      end
    else
      n = add_pair(parts, n, ekey, v)
    end
  end
  return concat(parts, "&", 1, n)
end


local function set_arg(res, key, value)
  if key == "" then
    return
  end
  local old = res[key]
  if old == nil then
    res[key] = value
  elseif type(old) == "table" then
    old[#old + 1] = value
  else
    res[key] = { old, value }
  end
end


--- Parse a query string (ngx.decode_args). Returns the table, plus
-- "truncated" when more than `max_args` pairs were present.
function _M.decode_args(str, max_args)
  local ts = type(str)
  if ts == "number" then
    str = tostring(str)
  elseif ts ~= "string" then
    error("bad argument #1 to 'decode_args' (string expected, got "
          .. ts .. ")", 2)
  end
  if max_args == nil then
    max_args = DEFAULT_MAX_ARGS
  elseif type(max_args) ~= "number" then
    error("bad argument #2 to 'decode_args' (number expected, got "
          .. type(max_args) .. ")", 2)
  end

  local res = {}
  local len = #str
  local p = ffi_cast(uint8_ptr, str)
  local q = 0             -- start of the current key or value
  local key               -- pending key once '=' was seen
  local count = 0

  for i = 0, len - 1 do
    local c = p[i]
    if c == EQUAL and not key then
      key = unescape(sub(str, q + 1, i))
      q = i + 1
    elseif c == AMP then
      local piece = unescape(sub(str, q + 1, i))
      if key then
        set_arg(res, key, piece)
        key = nil
      else
        set_arg(res, piece, true)
      end
      q = i + 1
      count = count + 1
      if max_args > 0 and count == max_args then
        return res, "truncated"
      end
    end
  end

  if q < len or key then
    local piece = unescape(sub(str, q + 1, len))
    if key then
      set_arg(res, key, piece)
    else
      set_arg(res, piece, true)
    end
  end

  return res
end


return _M
