-- Digests, HMAC, CRC-32 and base64 for the ngx shim.
--
-- Provides what OpenResty exposes as ngx.md5, ngx.md5_bin, ngx.sha1_bin,
-- ngx.hmac_sha1, ngx.crc32_short, ngx.crc32_long, ngx.encode_base64 and
-- ngx.decode_base64, plus `ngx.base64`'s encode_base64url/decode_base64url,
-- and sha256_bin/hmac_sha256 for the runtime. Digests go through OpenSSL
-- (EVP_Digest, HMAC) via the FFI; CRC-32 and base64 are byte loops over FFI
-- buffers so that they stay JIT-compiled. Argument coercion and error
-- messages follow lua-resty-core (resty/core/hash.lua, base64.lua and
-- ngx/base64.lua); base64 decoding follows nginx's ngx_decode_base64: it
-- stops at the first '=', does not require padding and rejects any byte
-- outside the alphabet.

local ffi = require "ffi"
local bit = require "bit"
local lib = require "sluice.ngx.lib"


local ffi_new = ffi.new
local ffi_str = ffi.string
local ffi_cast = ffi.cast
local band = bit.band
local bor = bit.bor
local bxor = bit.bxor
local rshift = bit.rshift
local lshift = bit.lshift
local byte = string.byte
local type = type
local tostring = tostring
local error = error


ffi.cdef [[
typedef struct evp_md_st EVP_MD;
typedef struct engine_st ENGINE;

const EVP_MD *EVP_md5(void);
const EVP_MD *EVP_sha1(void);
const EVP_MD *EVP_sha256(void);

int EVP_Digest(const void *data, size_t count, unsigned char *md,
               unsigned int *size, const EVP_MD *type, ENGINE *impl);

unsigned char *HMAC(const EVP_MD *evp_md, const void *key, int key_len,
                    const unsigned char *d, size_t n, unsigned char *md,
                    unsigned int *md_len);
]]


local crypto = lib.load("crypto", "EVP_Digest")


local MD5 = crypto.EVP_md5()
local SHA1 = crypto.EVP_sha1()
local SHA256 = crypto.EVP_sha256()

local EVP_MAX_MD_SIZE = 64
local CRC32_POLY = 0xedb88320
local B64_INVALID = 255

local B64_ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
                  .. "abcdefghijklmnopqrstuvwxyz0123456789"
local B64_STD = B64_ALNUM .. "+/"
local B64_URL = B64_ALNUM .. "-_"
local HEX = "0123456789abcdef"
local PAD = 61  -- '='


local uint8_ptr = ffi.typeof("const uint8_t *")
local md_buf = ffi_new("unsigned char[?]", EVP_MAX_MD_SIZE)
local md_len = ffi_new("unsigned int[1]")
local hex_buf = ffi_new("uint8_t[?]", EVP_MAX_MD_SIZE * 2)
local hex_digits = ffi_new("uint8_t[16]", { byte(HEX, 1, 16) })


local _M = {}


-- scratch output buffer shared by the encoders/decoders (one VM per worker,
-- and no call below can yield while it is in use)
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


local function alphabet(chars)
  local enc = ffi_new("uint8_t[64]")
  local dec = ffi_new("uint8_t[256]")
  for i = 0, 255 do
    dec[i] = B64_INVALID
  end
  for i = 0, 63 do
    local c = byte(chars, i + 1)
    enc[i] = c
    dec[c] = i
  end
  return enc, dec
end


local std_enc, std_dec = alphabet(B64_STD)
local url_enc, url_dec = alphabet(B64_URL)


local crc_table = ffi_new("uint32_t[256]")
for i = 0, 255 do
  local c = i
  for _ = 1, 8 do
    if band(c, 1) ~= 0 then
      c = bxor(rshift(c, 1), CRC32_POLY)
    else
      c = rshift(c, 1)
    end
  end
  crc_table[i] = c
end


-- lua-resty-core coercion for digest inputs: nil/false -> "", other
-- non-strings -> tostring
local function coerce(s)
  if type(s) ~= "string" then
    if not s then
      return ""
    end
    return tostring(s)
  end
  return s
end


local function check_str(s, n, fname)
  local t = type(s)
  if t == "string" then
    return s
  end
  if t == "number" then
    return tostring(s)
  end
  error("bad argument #" .. n .. " to '" .. fname
        .. "' (string expected, got " .. t .. ")", 3)
end


local function digest(md, s)
  crypto.EVP_Digest(s, #s, md_buf, md_len, md, nil)
  return ffi_str(md_buf, md_len[0])
end


local function hmac(md, key, s)
  crypto.HMAC(md, key, #key, s, #s, md_buf, md_len)
  return ffi_str(md_buf, md_len[0])
end


--- MD5 digest as 32 lowercase hex digits (ngx.md5).
function _M.md5(s)
  s = coerce(s)
  crypto.EVP_Digest(s, #s, md_buf, md_len, MD5, nil)
  local n = md_len[0]
  for i = 0, n - 1 do
    local b = md_buf[i]
    hex_buf[2 * i] = hex_digits[rshift(b, 4)]
    hex_buf[2 * i + 1] = hex_digits[band(b, 15)]
  end
  return ffi_str(hex_buf, 2 * n)
end


--- MD5 digest, 16 raw bytes (ngx.md5_bin).
function _M.md5_bin(s)
  return digest(MD5, coerce(s))
end


--- SHA-1 digest, 20 raw bytes (ngx.sha1_bin).
function _M.sha1_bin(s)
  return digest(SHA1, coerce(s))
end


--- SHA-256 digest, 32 raw bytes.
function _M.sha256_bin(s)
  return digest(SHA256, coerce(s))
end


--- HMAC-SHA1 of `s` keyed with `key`, 20 raw bytes (ngx.hmac_sha1).
function _M.hmac_sha1(key, s)
  key = check_str(key, 1, "hmac_sha1")
  s = check_str(s, 2, "hmac_sha1")
  return hmac(SHA1, key, s)
end


--- HMAC-SHA256 of `s` keyed with `key`, 32 raw bytes.
function _M.hmac_sha256(key, s)
  key = check_str(key, 1, "hmac_sha256")
  s = check_str(s, 2, "hmac_sha256")
  return hmac(SHA256, key, s)
end


local function crc32(s)
  s = coerce(s)
  local p = ffi_cast(uint8_ptr, s)
  local c = 0xffffffff
  for i = 0, #s - 1 do
    c = bxor(crc_table[band(bxor(c, p[i]), 0xff)], rshift(c, 8))
  end
  c = bxor(c, 0xffffffff)
  if c < 0 then
    c = c + 4294967296
  end
  return c
end


--- CRC-32 (zlib polynomial) as an unsigned number (ngx.crc32_short).
_M.crc32_short = crc32


--- Same value as crc32_short; nginx only picks another loop for long input.
_M.crc32_long = crc32


local function b64_encode(s, enc, padding)
  local len = #s
  local out_len
  if padding then
    out_len = (len + 2 - (len + 2) % 3) / 3 * 4
  else
    out_len = (len * 8 + 5 - (len * 8 + 5) % 6) / 6
  end
  if out_len == 0 then
    return ""
  end

  local src = ffi_cast(uint8_ptr, s)
  local dst = get_scratch(out_len)
  local i, d = 0, 0
  while len - i > 2 do
    local a, b, c = src[i], src[i + 1], src[i + 2]
    dst[d] = enc[rshift(a, 2)]
    dst[d + 1] = enc[bor(lshift(band(a, 3), 4), rshift(b, 4))]
    dst[d + 2] = enc[bor(lshift(band(b, 15), 2), rshift(c, 6))]
    dst[d + 3] = enc[band(c, 63)]
    i = i + 3
    d = d + 4
  end

  local rest = len - i
  if rest > 0 then
    local a = src[i]
    dst[d] = enc[rshift(a, 2)]
    if rest == 1 then
      dst[d + 1] = enc[lshift(band(a, 3), 4)]
      d = d + 2
      if padding then
        dst[d] = PAD
        dst[d + 1] = PAD
        d = d + 2
      end
    else
      local b = src[i + 1]
      dst[d + 1] = enc[bor(lshift(band(a, 3), 4), rshift(b, 4))]
      dst[d + 2] = enc[lshift(band(b, 15), 2)]
      d = d + 3
      if padding then
        dst[d] = PAD
        d = d + 1
      end
    end
  end

  return ffi_str(dst, d)
end


-- nginx's ngx_decode_base64_internal: nil on a bad byte or a bad length
local function b64_decode(s, dec)
  local src = ffi_cast(uint8_ptr, s)
  local slen = #s
  local len = 0
  while len < slen do
    local c = src[len]
    if c == PAD then
      break
    end
    if dec[c] == B64_INVALID then
      return nil
    end
    len = len + 1
  end

  if len % 4 == 1 then
    return nil
  end
  if len == 0 then
    return ""
  end

  local dst = get_scratch(len)
  local i, d = 0, 0
  while len - i > 3 do
    local a, b = dec[src[i]], dec[src[i + 1]]
    local c, e = dec[src[i + 2]], dec[src[i + 3]]
    dst[d] = band(bor(lshift(a, 2), rshift(b, 4)), 0xff)
    dst[d + 1] = band(bor(lshift(b, 4), rshift(c, 2)), 0xff)
    dst[d + 2] = band(bor(lshift(c, 6), e), 0xff)
    i = i + 4
    d = d + 3
  end

  local rest = len - i
  if rest > 1 then
    dst[d] = band(bor(lshift(dec[src[i]], 2), rshift(dec[src[i + 1]], 4)),
                  0xff)
    d = d + 1
  end
  if rest > 2 then
    dst[d] = band(bor(lshift(dec[src[i + 1]], 4),
                      rshift(dec[src[i + 2]], 2)), 0xff)
    d = d + 1
  end

  return ffi_str(dst, d)
end


--- Standard base64 (ngx.encode_base64). `no_padding` must be a boolean
-- when given.
function _M.encode_base64(s, no_padding)
  s = coerce(s)
  if no_padding and no_padding ~= true then
    error("bad no_padding: boolean expected, got " .. type(no_padding), 2)
  end
  return b64_encode(s, std_enc, not no_padding)
end


--- Decode standard base64 (ngx.decode_base64): nil on invalid input.
function _M.decode_base64(s)
  if type(s) ~= "string" then
    error("string argument only", 2)
  end
  return (b64_decode(s, std_dec))
end


--- base64url without padding (ngx.base64.encode_base64url).
function _M.encode_base64url(s)
  if type(s) ~= "string" then
    return nil, "must provide a string"
  end
  return b64_encode(s, url_enc, false)
end


--- Decode base64url (ngx.base64.decode_base64url): nil, "invalid input".
function _M.decode_base64url(s)
  if type(s) ~= "string" then
    return nil, "must provide a string"
  end
  local res = b64_decode(s, url_dec)
  if not res then
    return nil, "invalid input"
  end
  return res
end


return _M
