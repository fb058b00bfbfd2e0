-- UUIDs for Sluice: random version 4, name-based version 5 (RFC 4122) and
-- a validity check. SHA-1, needed by v5, is implemented here with the `bit`
-- library; it is meant for ids, not for anything security related.

local bit = require "bit"


local band = bit.band
local bor = bit.bor
local bxor = bit.bxor
local bnot = bit.bnot
local rol = bit.rol
local rshift = bit.rshift
local lshift = bit.lshift
local tobit = bit.tobit
local tohex = bit.tohex
local byte = string.byte
local char = string.char
local sub = string.sub
local fmt = string.format
local rep = string.rep
local gsub = string.gsub
local concat = table.concat
local random = math.random
local floor = math.floor
local type = type
local tonumber = tonumber
local error = error
local io_open = io.open


local UUID_PATTERN = "^%x%x%x%x%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-"
                     .. "%x%x%x%x%x%x%x%x%x%x%x%x$"


local _M = {}


local function be32(s, i)
  local a, b, c, d = byte(s, i, i + 3)
  return tobit(lshift(a, 24) + lshift(b, 16) + lshift(c, 8) + d)
end


local function u32_bytes(n)
  return char(band(rshift(n, 24), 0xff), band(rshift(n, 16), 0xff),
              band(rshift(n, 8), 0xff), band(n, 0xff))
end


--- SHA-1 of a string, as 20 raw bytes.
function _M.sha1(msg)
  if type(msg) ~= "string" then
    error("msg must be a string", 2)
  end

  local len = #msg
  -- length in bits as a 64-bit big-endian integer
  local bits_hi = floor(len / 0x20000000)
  local bits_lo = (len % 0x20000000) * 8
  local pad = 64 - ((len + 9) % 64)
  if pad == 64 then
    pad = 0
  end
  msg = msg .. "\128" .. rep("\0", pad) .. u32_bytes(bits_hi)
        .. u32_bytes(bits_lo)

  local h0, h1, h2, h3, h4 = tobit(0x67452301), tobit(0xefcdab89),
                             tobit(0x98badcfe), tobit(0x10325476),
                             tobit(0xc3d2e1f0)
  local w = {}

  for chunk = 1, #msg, 64 do
    for i = 0, 15 do
      w[i] = be32(msg, chunk + i * 4)
    end
    for i = 16, 79 do
      w[i] = rol(bxor(w[i - 3], w[i - 8], w[i - 14], w[i - 16]), 1)
    end

    local a, b, c, d, e = h0, h1, h2, h3, h4
    for i = 0, 79 do
      local f, k
      if i < 20 then
        f, k = bor(band(b, c), band(bnot(b), d)), 0x5a827999
      elseif i < 40 then
        f, k = bxor(b, c, d), 0x6ed9eba1
      elseif i < 60 then
        f, k = bor(band(b, c), band(b, d), band(c, d)), 0x8f1bbcdc
      else
        f, k = bxor(b, c, d), 0xca62c1d6
      end
      local t = tobit(rol(a, 5) + f + e + k + w[i])
      e, d, c, b, a = d, c, rol(b, 30), a, t
    end

    h0 = tobit(h0 + a)
    h1 = tobit(h1 + b)
    h2 = tobit(h2 + c)
    h3 = tobit(h3 + d)
    h4 = tobit(h4 + e)
  end

  return u32_bytes(h0) .. u32_bytes(h1) .. u32_bytes(h2) .. u32_bytes(h3)
         .. u32_bytes(h4)
end


local function format_uuid(raw16)
  local hex = {}
  for i = 1, 16 do
    hex[i] = tohex(byte(raw16, i), 2)
  end
  local s = concat(hex)
  return sub(s, 1, 8) .. "-" .. sub(s, 9, 12) .. "-" .. sub(s, 13, 16)
         .. "-" .. sub(s, 17, 20) .. "-" .. sub(s, 21, 32)
end


-- Set the version nibble (byte 7) and the RFC 4122 variant (byte 9).
local function stamp(raw16, version)
  local b7 = bor(band(byte(raw16, 7), 0x0f), lshift(version, 4))
  local b9 = bor(band(byte(raw16, 9), 0x3f), 0x80)
  return sub(raw16, 1, 6) .. char(b7) .. sub(raw16, 8, 8) .. char(b9)
         .. sub(raw16, 10, 16)
end


--- True if `s` is a UUID in the 8-4-4-4-12 hex form (any case).
function _M.is_valid(s)
  return type(s) == "string" and #s == 36 and s:find(UUID_PATTERN) ~= nil
end


local function random_bytes(n)
  local f = io_open("/dev/urandom", "rb")
  if f then
    local s = f:read(n)
    f:close()
    if s and #s == n then
      return s
    end
  end
  local t = {}
  for i = 1, n do
    t[i] = char(random(0, 255))
  end
  return concat(t)
end


--- A random (version 4) UUID.
function _M.generate_v4()
  return format_uuid(stamp(random_bytes(16), 4))
end


--- A name-based (version 5, SHA-1) UUID of `name` in `namespace`.
-- Same namespace and name give the same UUID.
function _M.generate_v5(namespace, name)
  if not _M.is_valid(namespace) then
    error("namespace must be a valid UUID", 2)
  end
  if type(name) ~= "string" then
    error("name must be a string", 2)
  end

  local hex = gsub(namespace, "%-", "")
  local ns = gsub(hex, "%x%x", function(h)
    return char(tonumber(h, 16))
  end)

  return format_uuid(stamp(sub(_M.sha1(ns .. name), 1, 16), 5))
end


-- hex helper for tests and logs
function _M.hex(raw)
  return (gsub(raw, ".", function(c)
    return fmt("%02x", byte(c))
  end))
end


return _M
