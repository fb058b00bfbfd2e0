-- The request-independent part of the ngx shim (lua/sluice/ngx/): regex,
-- digests and base64, URI/args coding, time and constants. Expected values
-- come from the RFCs, from lua-nginx-module's own test files (t/006-escape.t,
-- t/034-match.t ...), from `openssl` run at test time, and from reference
-- implementations written here independently of the code under test.

local ffi = require "ffi"
local bit = require "bit"
local cjson = require "cjson"
local lib = require "sluice.ngx.lib"
local re = require "sluice.ngx.re"
local crypto = require "sluice.ngx.crypto"
local args = require "sluice.ngx.args"
local ngx_time = require "sluice.ngx.time"
local constants = require "sluice.ngx.constants"


local function hex(s)
  return (s:gsub(".", function(c) return ("%02x"):format(c:byte()) end))
end


local function unhex(s)
  return (s:gsub("%x%x", function(h) return string.char(tonumber(h, 16)) end))
end


local function tmpfile(data)
  local name = os.tmpname()
  local f = assert(io.open(name, "wb"))
  f:write(data)
  f:close()
  return name
end


local function sh(cmd)
  local p = assert(io.popen(cmd))
  local out = p:read("*a")
  p:close()
  return out
end


local function has_openssl()
  return os.execute("openssl version >/dev/null 2>&1") == 0
end


-- deterministic pseudo-random binary strings
local function random_strings(n, seed)
  math.randomseed(seed)
  local list = {}
  for i = 1, n do
    local len = (i * 37) % 300
    local b = {}
    for j = 1, len do
      b[j] = string.char(math.random(0, 255))
    end
    list[i] = table.concat(b)
  end
  return list
end


-- sorted "k=v" view of a captures table, for compact comparisons
local function view(t)
  if type(t) ~= "table" then
    return t
  end
  local out = {}
  for k, v in pairs(t) do
    if type(v) == "table" then
      v = "{" .. table.concat(v, ",") .. "}"
    end
    out[#out + 1] = tostring(k) .. "=" .. tostring(v)
  end
  table.sort(out)
  return table.concat(out, " ")
end


-- the lines of `jit.v` output produced while fn runs
local function jit_log(fn)
  local jv = require "jit.v"
  local name = os.tmpname()
  jit.flush()
  jv.on(name)
  fn()
  jv.off()
  local lines = {}
  for line in io.lines(name) do
    -- jit.v's own off() may be traced; only the code under test counts
    if not line:find(" v%.lua:") then
      lines[#lines + 1] = line
    end
  end
  os.remove(name)
  return table.concat(lines, "\n")
end


describe("sluice.ngx.lib", function()
  it("resolves libpcre2-8 and libcrypto, once per name", function()
    ffi.cdef [[
      int sl_test_pcre2_config(uint32_t what, void *where)
        asm("pcre2_config_8");
      unsigned long sl_test_OpenSSL_version_num(void)
        asm("OpenSSL_version_num");
    ]]
    local p = lib.load("pcre2-8", "sl_test_pcre2_config")
    assert.equal(p, lib.load("pcre2-8", "sl_test_pcre2_config"))
    local buf = ffi.new("uint32_t[1]")
    -- PCRE2_CONFIG_UNICODE (9) is 1 in any Unicode-enabled build
    assert.equal(0, p.sl_test_pcre2_config(9, buf))
    assert.equal(1, buf[0])

    local c = lib.load("crypto", "sl_test_OpenSSL_version_num")
    -- OpenSSL 3.x: 0x3MNN00PS
    assert.equal(3, math.floor(tonumber(c.sl_test_OpenSSL_version_num())
                               / 0x10000000))
  end)

  it("reports whether a library came from the running binary", function()
    -- plain luajit does not link libpcre2-8, so this is normally ffi.load's
    -- namespace; either way is_builtin must agree with what load returned
    local ns = lib.load("pcre2-8", "sl_test_pcre2_config")
    assert.equal(ns == ffi.C, lib.is_builtin("pcre2-8"))
    assert.is_false(lib.is_builtin("never-loaded"))
  end)

  it("raises for a library that cannot be found", function()
    assert.has_error(function()
      lib.load("no-such-lib-sluice", "nothing")
    end)
  end)
end)


describe("sluice.ngx.crypto", function()
  it("md5 matches RFC 1321's test suite", function()
    local cases = {
      { "", "d41d8cd98f00b204e9800998ecf8427e" },
      { "a", "0cc175b9c0f1b6a831c399e269772661" },
      { "abc", "900150983cd24fb0d6963f7d28e17f72" },
      { "message digest", "f96b697d7cb7938d525a2f31aaf161d0" },
      { "abcdefghijklmnopqrstuvwxyz", "c3fcd3d76192e4007dfb496cca67e13b" },
      { "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
        "d174ab98d277d9f5a5611c2c9f419d9f" },
      { ("1234567890"):rep(8), "57edf4a22be3c955ac49da2e2107b67a" },
    }
    for _, c in ipairs(cases) do
      assert.equal(c[2], crypto.md5(c[1]))
      assert.equal(c[2], hex(crypto.md5_bin(c[1])))
    end
  end)

  it("sha1_bin matches RFC 3174's test cases", function()
    local cases = {
      { "abc", "a9993e364706816aba3e25717850c26c9cd0d89d" },
      { "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
        "84983e441c3bd26ebaae4aa1f95129e5e54670f1" },
      { ("a"):rep(1000000), "34aa973cd4c4daa4f61eeb2bdbad27316534016f" },
      { ("01234567"):rep(80), "dea356a2cddd90c7a7ecedc5ebb563934f460452" },
    }
    for _, c in ipairs(cases) do
      assert.equal(c[2], hex(crypto.sha1_bin(c[1])))
    end
  end)

  it("sha256_bin matches FIPS 180-2 examples", function()
    local cases = {
      { "",
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855" },
      { "abc",
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad" },
      { "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
        "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1" },
    }
    for _, c in ipairs(cases) do
      assert.equal(c[2], hex(crypto.sha256_bin(c[1])))
    end
  end)

  it("coerces digest input like lua-resty-core (nil -> '', tostring)",
     function()
    assert.equal(crypto.md5(""), crypto.md5(nil))
    assert.equal(crypto.md5("12"), crypto.md5(12))
    assert.equal(crypto.sha1_bin("true"), crypto.sha1_bin(true))
  end)

  it("hmac_sha1 matches RFC 2202's test cases", function()
    local cases = {
      { ("\11"):rep(20), "Hi There",
        "b617318655057264e28bc0b6fb378c8ef146be00" },
      { "Jefe", "what do ya want for nothing?",
        "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79" },
      { ("\170"):rep(20), ("\221"):rep(50),
        "125d7342b9ac11cd91a39af48aa17b4f63f175d3" },
      { unhex("0102030405060708090a0b0c0d0e0f10111213141516171819"),
        ("\205"):rep(50), "4c9007f4026250c6bc8414f9bf50c86c2d7235da" },
      { ("\170"):rep(80),
        "Test Using Larger Than Block-Size Key - Hash Key First",
        "aa4ae5e15272d00e95705637ce8a3b55ed402112" },
      { ("\170"):rep(80), "Test Using Larger Than Block-Size Key and "
        .. "Larger Than One Block-Size Data",
        "e8e99d0f45237d786d6bbaa7965c7808bbff1a91" },
    }
    for _, c in ipairs(cases) do
      assert.equal(c[3], hex(crypto.hmac_sha1(c[1], c[2])))
    end
  end)

  it("hmac_sha256 matches RFC 4231's test cases", function()
    local cases = {
      { ("\11"):rep(20), "Hi There",
        "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7" },
      { "Jefe", "what do ya want for nothing?",
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843" },
      { ("\170"):rep(20), ("\221"):rep(50),
        "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe" },
    }
    for _, c in ipairs(cases) do
      assert.equal(c[3], hex(crypto.hmac_sha256(c[1], c[2])))
    end
  end)

  it("hmac_* reject non-string arguments as luaL_checklstring", function()
    assert.has_error(function() crypto.hmac_sha1(nil, "x") end,
      "bad argument #1 to 'hmac_sha1' (string expected, got nil)")
    assert.has_error(function() crypto.hmac_sha256("k", {}) end,
      "bad argument #2 to 'hmac_sha256' (string expected, got table)")
    assert.equal(hex(crypto.hmac_sha1("1", "2")),
                 hex(crypto.hmac_sha1(1, 2)))
  end)

  it("digests and HMACs agree with `openssl dgst`", function()
    if not has_openssl() then
      pending("openssl binary not installed")
      return
    end
    for i, s in ipairs(random_strings(12, 4242)) do
      local name = tmpfile(s)
      local key = "key-" .. i
      local function dgst(opts)
        return sh("openssl dgst " .. opts .. " -r " .. name):match("^(%x+)")
      end
      assert.equal(dgst("-md5"), crypto.md5(s))
      assert.equal(dgst("-sha1"), hex(crypto.sha1_bin(s)))
      assert.equal(dgst("-sha256"), hex(crypto.sha256_bin(s)))
      assert.equal(dgst("-sha1 -hmac " .. key), hex(crypto.hmac_sha1(key, s)))
      assert.equal(dgst("-sha256 -hmac " .. key),
                   hex(crypto.hmac_sha256(key, s)))
      os.remove(name)
    end
  end)

  describe("crc32", function()
    -- bit-by-bit reference, no table
    local function crc32_ref(s)
      local c = 0xffffffff
      for i = 1, #s do
        c = bit.bxor(c, s:byte(i))
        for _ = 1, 8 do
          local lsb = bit.band(c, 1)
          c = bit.rshift(c, 1)
          if lsb == 1 then
            c = bit.bxor(c, 0xedb88320)
          end
        end
      end
      c = bit.bnot(c)
      return c < 0 and c + 2 ^ 32 or c
    end

    it("matches the CRC-32 check values", function()
      local cases = {
        { "", 0 },
        { "a", 0xe8b7be43 },
        { "123456789", 0xcbf43926 },
        { "The quick brown fox jumps over the lazy dog", 0x414fa339 },
        { ("\255"):rep(32), 0xff6cab0b },
      }
      for _, c in ipairs(cases) do
        assert.equal(c[2], crypto.crc32_short(c[1]))
        assert.equal(c[2], crypto.crc32_long(c[1]))
      end
    end)

    it("agrees with a bitwise implementation on random input", function()
      for _, s in ipairs(random_strings(40, 7)) do
        local want = crc32_ref(s)
        assert.equal(want, crypto.crc32_short(s))
        assert.equal(want, crypto.crc32_long(s))
      end
    end)

    it("returns an unsigned number and coerces nil", function()
      assert.is_true(crypto.crc32_short("123456789") > 2 ^ 31)
      assert.equal(0, crypto.crc32_long(nil))
    end)
  end)

  describe("base64", function()
    it("encodes RFC 4648 section 10 vectors", function()
      local cases = {
        { "", "", "" },
        { "f", "Zg==", "Zg" },
        { "fo", "Zm8=", "Zm8" },
        { "foo", "Zm9v", "Zm9v" },
        { "foob", "Zm9vYg==", "Zm9vYg" },
        { "fooba", "Zm9vYmE=", "Zm9vYmE" },
        { "foobar", "Zm9vYmFy", "Zm9vYmFy" },
      }
      for _, c in ipairs(cases) do
        assert.equal(c[2], crypto.encode_base64(c[1]))
        assert.equal(c[3], crypto.encode_base64(c[1], true))
        assert.equal(c[1], crypto.decode_base64(c[2]))
        assert.equal(c[1], crypto.decode_base64(c[3]))
      end
    end)

    it("decodes like ngx_decode_base64", function()
      local cases = {
        { "YQ==", "a" },
        { "YQ", "a" },          -- padding is optional
        { "YQ==garbage", "a" }, -- everything after the first '=' is ignored
        { "YWJj=", "abc" },
        { "Y", nil },           -- 1 char left over: invalid
        { "YWJjZ", nil },
        { "YW Jj", nil },       -- whitespace is not skipped
        { "YW\nJj", nil },
        { "Y-8_", nil },        -- url alphabet is rejected
        { "+/+/", "\251\255\191" },
        { "", "" },
        { "=", "" },
      }
      for _, c in ipairs(cases) do
        assert.equal(c[2], crypto.decode_base64(c[1]), c[1])
      end
    end)

    it("checks arguments like lua-resty-core", function()
      assert.equal("", crypto.encode_base64(nil))
      assert.equal("MTIz", crypto.encode_base64(123))
      assert.has_error(function() crypto.encode_base64("a", 1) end,
                       "bad no_padding: boolean expected, got number")
      assert.has_error(function() crypto.decode_base64(nil) end,
                       "string argument only")
    end)

    it("round-trips random binary and agrees with `openssl base64`",
       function()
      local openssl = has_openssl()
      for _, s in ipairs(random_strings(20, 99)) do
        local enc = crypto.encode_base64(s)
        assert.equal(s, crypto.decode_base64(enc))
        assert.equal(s, crypto.decode_base64(crypto.encode_base64(s, true)))
        if openssl and #s > 0 then
          local name = tmpfile(s)
          assert.equal(enc, (sh("openssl base64 -A -in " .. name)
                             :gsub("%s+$", "")))
          os.remove(name)
        end
      end
    end)

    it("has base64url variants as the ngx.base64 module", function()
      local cases = {
        { "", "" },
        { "\251\255\191", "-_-_" },
        { "\251\255", "-_8" },
        { "\251", "-w" },
        { "hello?world>", "aGVsbG8_d29ybGQ-" },
      }
      for _, c in ipairs(cases) do
        assert.equal(c[2], crypto.encode_base64url(c[1]))
        assert.equal(c[1], crypto.decode_base64url(c[2]))
      end
      local res, err = crypto.decode_base64url("+/+/")
      assert.is_nil(res)
      assert.equal("invalid input", err)
      res, err = crypto.decode_base64url("a")
      assert.is_nil(res)
      assert.equal("invalid input", err)
      res, err = crypto.encode_base64url(nil)
      assert.is_nil(res)
      assert.equal("must provide a string", err)
      res, err = crypto.decode_base64url(5)
      assert.is_nil(res)
      assert.equal("must provide a string", err)
    end)
  end)
end)


describe("sluice.ngx.args", function()
  it("escape_uri: lua-nginx-module's t/006-escape.t", function()
    local cases = {
      { "a 你", nil, "a%20%E4%BD%A0" },
      { "a+b", nil, "a%2Bb" },
      { "\"a/b={}:<>;&[]\\^", nil,
        "%22a%2Fb%3D%7B%7D%3A%3C%3E%3B%26%5B%5D%5C%5E" },
      { " ", nil, "%20" },
      { "abc", nil, "abc" },
      { "", nil, "" },
      { nil, nil, "" },
      { 32, nil, "32" },
      { "-_.!~*'()", nil, "-_.!~*'()" },
      { ",$@|`", nil, "%2C%24%40%7C%60" },
      { "https://www.google.com", 0, "https://www.google.com" },
      { "https://www.google.com/query?q=test", 0,
        "https://www.google.com/query%3Fq=test" },
      { "https://www.google.com/query?\r\nq=test", 0,
        "https://www.google.com/query%3F%0D%0Aq=test" },
      { "-_.~!*'();:@&=+$,/?#", 0, "-_.~!*'();:@&=+$,/%3F%23" },
      { "<>[]{}\\\" ", 0, "<>[]{}\\\"%20" },
    }
    local u = "https://www.google.com/?t=abc@ :"
    local by_type = {
      [0] = "https://www.google.com/%3Ft=abc@%20:",
      [1] = "https://www.google.com/%3Ft=abc@%20:",
      [2] = "https%3A%2F%2Fwww.google.com%2F%3Ft%3Dabc%40%20%3A",
      [3] = "https://www.google.com/?t=abc@%20:",
      [4] = "https://www.google.com/?t=abc@%20:",
      [5] = "https://www.google.com/?t=abc@%20:",
      [6] = "https://www.google.com/?t=abc@%20:",
    }
    for t = 0, 6 do
      cases[#cases + 1] = { u, t, by_type[t] }
    end
    for _, c in ipairs(cases) do
      assert.equal(c[3], args.escape_uri(c[1], c[2]))
    end
  end)

  it("escape_uri: each type escapes exactly its byte set", function()
    -- expected escaped sets, spelled out per type (printable ASCII only;
    -- controls are escaped by every type, bytes >= 0x80 by types 0..4)
    local sets = {
      [0] = " #%?",
      [1] = " #%+?",
      [2] = " \"#$%&+,/:;<=>?@[\\]^`{|}",
      [3] = " \"#%'",
      [4] = " \"'",
      [5] = " %",
      [6] = " %",
    }
    for t = 0, 6 do
      for c = 0, 255 do
        local ch = string.char(c)
        local want
        if c < 0x20 then
          want = true
        elseif c >= 0x7f then
          want = (t <= 4)
        else
          want = sets[t]:find(ch, 1, true) ~= nil
        end
        local got = args.escape_uri(ch, t) ~= ch
        assert.equal(want, got, ("type %d byte 0x%02x"):format(t, c))
        if got then
          assert.equal(("%%%02X"):format(c), args.escape_uri(ch, t))
        end
      end
    end
  end)

  it("escape_uri rejects bad types", function()
    assert.has_error(function() args.escape_uri("a", -1) end,
                     "\"type\" -1 out of range")
    assert.has_error(function() args.escape_uri("a", 10) end,
                     "\"type\" 10 out of range")
    assert.has_error(function() args.escape_uri("a", true) end,
                     "\"type\" is not a number")
  end)

  it("unescape_uri: lua-nginx-module's cases", function()
    local cases = {
      { "a%20%e4%bd%a0", "a 你" },
      { "%ua%%20%au", "%ua% %au" },
      { "%a", "%a" },
      { "%u", "%u" },
      { "%", "%" },
      { "good%20job%", "good job%" },
      { "a+b", "a b" },
      { "%2B%2b", "++" },
      { "%3F%00x", "?\0x" },
      { nil, "" },
      { 32, "32" },
      { "plain", "plain" },
    }
    for _, c in ipairs(cases) do
      assert.equal(c[2], args.unescape_uri(c[1]))
    end
  end)

  it("unescape_uri inverts escape_uri on random binary", function()
    for _, s in ipairs(random_strings(20, 11)) do
      for t = 0, 4 do
        -- '+' is not escaped by types 0, 3, 4 and would decode to ' '
        if t == 1 or t == 2 or not s:find("+", 1, true) then
          assert.equal(s, args.unescape_uri(args.escape_uri(s, t)))
        end
      end
    end
  end)

  it("encode_args follows ngx.encode_args", function()
    -- one key per case: pairs() order is the table's, as in OpenResty
    local cases = {
      { { foo = "bar" }, "foo=bar" },
      { { ["b r"] = "hello world" }, "b%20r=hello%20world" },
      { { n = 3 }, "n=3" },
      { { n = 1.5 }, "n=1.5" },
      { { flag = true }, "flag" },
      { { flag = false }, "" },
      { { a = { 1, "x y", true, false, 2 } }, "a=1&a=x%20y&a&a=2" },
      { { a = {} }, "" },
      { { ["k&="] = "v/?#" }, "k%26%3D=v%2F%3F%23" },
      { {}, "" },
    }
    for _, c in ipairs(cases) do
      assert.equal(c[2], args.encode_args(c[1]))
    end
  end)

  it("encode_args output decodes back to the same table", function()
    local t = { a = "1", b = { "x", "y z" }, c = true, d = "&=" }
    local out = args.encode_args(t)
    assert.same(t, args.decode_args(out))
    local parts = {}
    for p in out:gmatch("[^&]+") do
      parts[#parts + 1] = p
    end
    table.sort(parts)
    assert.same({ "a=1", "b=x", "b=y%20z", "c", "d=%26%3D" }, parts)
  end)

  it("encode_args rejects bad keys and values", function()
    assert.has_error(function() args.encode_args({ "x" }) end,
      "attempt to use a non-string key in the \"args\" option table")
    assert.has_error(function() args.encode_args({ a = {} and print }) end,
      "attempt to use function as query arg value")
    assert.has_error(function() args.encode_args({ a = { {} } }) end,
      "attempt to use table as query arg value")
    assert.has_error(function() args.encode_args({ a = cjson.null }) end,
      "attempt to use userdata as query arg value")
    assert.has_error(function() args.encode_args("a=1") end)
  end)

  it("decode_args follows ngx.decode_args", function()
    local cases = {
      { "a=1&b=2", { a = "1", b = "2" } },
      { "a=1&a=2&a=3", { a = { "1", "2", "3" } } },
      { "a&b=", { a = true, b = "" } },
      { "a&a=1", { a = { true, "1" } } },
      { "=v&&x=1&", { x = "1" } },        -- empty keys are dropped
      { "k=v=w", { k = "v=w" } },         -- first '=' splits
      { "a%20b=c+d%26", { ["a b"] = "c d&" } },
      { "%zz=%", { ["%zz"] = "%" } },
      { "", {} },
      { "a=", { a = "" } },
      { "=", {} },
    }
    for _, c in ipairs(cases) do
      assert.same(c[2], (args.decode_args(c[1])), c[1])
    end
  end)

  it("decode_args stops at max_args and says truncated", function()
    local many = {}
    for i = 1, 150 do
      many[i] = "k" .. i .. "=" .. i
    end
    local qs = table.concat(many, "&")

    local t, err = args.decode_args(qs)
    local n = 0
    for _ in pairs(t) do
      n = n + 1
    end
    assert.equal(100, n)
    assert.equal("truncated", err)
    assert.equal("100", t.k100)
    assert.is_nil(t.k101)

    t, err = args.decode_args(qs, 0)
    n = 0
    for _ in pairs(t) do
      n = n + 1
    end
    assert.equal(150, n)
    assert.is_nil(err)

    local cases = {
      -- str, max, expected, truncated?
      { "a=1&b=2&c=3", 2, { a = "1", b = "2" }, true },
      { "a=1&b=2", 2, { a = "1", b = "2" }, false },
      { "a=1&b=2&", 2, { a = "1", b = "2" }, true },
      { "&&a=1", 2, {}, true },       -- empty pairs count too
      { "a=1&b=2", -1, { a = "1", b = "2" }, false },
    }
    for _, c in ipairs(cases) do
      local res, e = args.decode_args(c[1], c[2])
      assert.same(c[3], res, c[1])
      assert.equal(c[4] and "truncated" or nil, e)
    end
  end)

  it("decode_args checks its arguments", function()
    assert.same({ ["12"] = true }, (args.decode_args(12)))
    assert.has_error(function() args.decode_args(nil) end,
      "bad argument #1 to 'decode_args' (string expected, got nil)")
    assert.has_error(function() args.decode_args("a", "x") end)
  end)
end)


describe("sluice.ngx.time", function()
  after_each(function()
    ngx_time.uncache()
  end)

  it("formats HTTP and cookie dates like nginx", function()
    local cases = {
      -- sec, http_time, cookie_time
      { 1290079655, "Thu, 18 Nov 2010 11:27:35 GMT",
        "Thu, 18-Nov-10 11:27:35 GMT" },
      { 0, "Thu, 01 Jan 1970 00:00:00 GMT", "Thu, 01-Jan-70 00:00:00 GMT" },
      { 951782400, "Tue, 29 Feb 2000 00:00:00 GMT",
        "Tue, 29-Feb-00 00:00:00 GMT" },
      { 2147483647, "Tue, 19 Jan 2038 03:14:07 GMT",
        "Tue, 19-Jan-2038 03:14:07 GMT" },
      { 2145916799, "Thu, 31 Dec 2037 23:59:59 GMT",
        "Thu, 31-Dec-37 23:59:59 GMT" },
      { 4102444800, "Fri, 01 Jan 2100 00:00:00 GMT",
        "Fri, 01-Jan-2100 00:00:00 GMT" },
      { 1290079655.9, "Thu, 18 Nov 2010 11:27:35 GMT",
        "Thu, 18-Nov-10 11:27:35 GMT" },
      { "1290079655", "Thu, 18 Nov 2010 11:27:35 GMT",
        "Thu, 18-Nov-10 11:27:35 GMT" },
    }
    for _, c in ipairs(cases) do
      assert.equal(c[2], ngx_time.http_time(c[1]))
      assert.equal(c[3], ngx_time.cookie_time(c[1]))
    end
    assert.has_error(function() ngx_time.http_time("soon") end)
  end)

  it("agrees with os.date('!...') over a range of instants", function()
    math.randomseed(5)
    for _ = 1, 500 do
      local t = math.random(0, 2 ^ 31 - 1)
      assert.equal(os.date("!%a, %d %b %Y %H:%M:%S GMT", t),
                   ngx_time.http_time(t))
    end
  end)

  it("parse_http_time accepts the three HTTP date forms", function()
    local cases = {
      { "Thu, 18 Nov 2010 11:27:35 GMT", 1290079655 },
      { "Thursday, 18-Nov-10 11:27:35 GMT", 1290079655 },
      { "Thu Nov 18 11:27:35 2010", 1290079655 },
      { "Mon Nov  8 11:27:35 2010", 1289215655 },
      { "Thu, 18 Nov 2010 11:27:35", 1290079655 },   -- zone is not read
      { "Sun, 06 Nov 1994 08:49:37 GMT", 784111777 },
      { "Sunday, 06-Nov-94 08:49:37 GMT", 784111777 },
      { "Sun Nov  6 08:49:37 1994", 784111777 },
      { "Tue, 29 Feb 2000 00:00:00 GMT", 951782400 },
      { "Thu, 01 Jan 1970 00:00:00 GMT", 0 },
      { "Tue, 01-Jan-69 00:00:00 GMT", 3124224000 },  -- 2-digit year < 70
      -- invalid
      { "Thu, 29 Feb 2011 11:27:35 GMT", nil },
      { "Thu, 29 Feb 1900 11:27:35 GMT", nil },
      { "Thu, 31 Apr 2010 11:27:35 GMT", nil },
      { "Thu, 18 Nov 2010 24:27:35 GMT", nil },
      { "Thu, 18 Nov 2010 11:60:35 GMT", nil },
      { "Thu, 18 Nov 2010 11:27:60 GMT", nil },
      { "Thu, 18 Xyz 2010 11:27:35 GMT", nil },
      { "Thu, 18 Nov 10 11:27:35 GMT", nil },
      { "Thu, 18 Nov 2010 11.27.35 GMT", nil },
      { "Thu, 1 Nov 2010 11:27:35 GMT", nil },
      { "garbage", nil },
      { "", nil },
      { "Thu, 18 Nov", nil },
    }
    for _, c in ipairs(cases) do
      assert.equal(c[2], ngx_time.parse_http_time(c[1]), c[1])
    end
  end)

  it("parse_http_time inverts http_time and cookie_time", function()
    math.randomseed(6)
    for _ = 1, 300 do
      local t = math.random(0, 2 ^ 31 - 1)
      assert.equal(t, ngx_time.parse_http_time(ngx_time.http_time(t)))
      if t < 3155760000 then   -- 2-digit cookie years stop at 2069
        assert.equal(t, ngx_time.parse_http_time(ngx_time.cookie_time(t)))
      end
    end
  end)

  it("now/time read the clock when the runtime does not drive it",
     function()
    local before = os.time()
    local now = ngx_time.now()
    local after = os.time()
    assert.is_true(now >= before and now < after + 1)
    -- millisecond precision
    assert.near(now, math.floor(now * 1000 + 0.5) / 1000, 1e-6)
    assert.equal(math.floor(now), ngx_time.time())
  end)

  it("serves a cached time between update() calls", function()
    ngx_time.update()
    local t1 = ngx_time.now()
    -- busy-wait ~30 ms; the cached value must not move
    local c = os.clock()
    while os.clock() - c < 0.03 do end
    assert.equal(t1, ngx_time.now())
    assert.equal(math.floor(t1), ngx_time.time())

    ngx_time.update_time()
    local t2 = ngx_time.now()
    assert.is_true(t2 >= t1 + 0.02)

    ngx_time.update()
    assert.is_true(ngx_time.now() >= t2)
  end)

  it("formats local and UTC dates from the same clock", function()
    ngx_time.update()
    local t = ngx_time.time()
    assert.equal(os.date("%Y-%m-%d", t), ngx_time.today())
    assert.equal(os.date("%Y-%m-%d %H:%M:%S", t), ngx_time.localtime())
    assert.equal(os.date("!%Y-%m-%d %H:%M:%S", t), ngx_time.utctime())
    assert.matches("^%d%d%d%d%-%d%d%-%d%d$", ngx_time.today())
  end)
end)


describe("sluice.ngx.constants", function()
  it("has nginx's values", function()
    local cases = {
      OK = 0, ERROR = -1, AGAIN = -2, DONE = -4, DECLINED = -5,
      HTTP_GET = 2, HTTP_HEAD = 4, HTTP_POST = 8, HTTP_PUT = 16,
      HTTP_DELETE = 32, HTTP_MKCOL = 64, HTTP_COPY = 128, HTTP_MOVE = 256,
      HTTP_OPTIONS = 512, HTTP_PROPFIND = 1024, HTTP_PROPPATCH = 2048,
      HTTP_LOCK = 4096, HTTP_UNLOCK = 8192, HTTP_PATCH = 16384,
      HTTP_TRACE = 32768,
      HTTP_CONTINUE = 100, HTTP_SWITCHING_PROTOCOLS = 101, HTTP_OK = 200,
      HTTP_CREATED = 201, HTTP_ACCEPTED = 202, HTTP_NO_CONTENT = 204,
      HTTP_PARTIAL_CONTENT = 206, HTTP_SPECIAL_RESPONSE = 300,
      HTTP_MOVED_PERMANENTLY = 301, HTTP_MOVED_TEMPORARILY = 302,
      HTTP_FOUND = 302, HTTP_SEE_OTHER = 303, HTTP_NOT_MODIFIED = 304,
      HTTP_TEMPORARY_REDIRECT = 307, HTTP_PERMANENT_REDIRECT = 308,
      HTTP_BAD_REQUEST = 400, HTTP_UNAUTHORIZED = 401,
      HTTP_PAYMENT_REQUIRED = 402, HTTP_FORBIDDEN = 403,
      HTTP_NOT_FOUND = 404, HTTP_NOT_ALLOWED = 405,
      HTTP_NOT_ACCEPTABLE = 406, HTTP_REQUEST_TIMEOUT = 408,
      HTTP_CONFLICT = 409, HTTP_GONE = 410, HTTP_UPGRADE_REQUIRED = 426,
      HTTP_TOO_MANY_REQUESTS = 429, HTTP_CLOSE = 444, HTTP_ILLEGAL = 451,
      HTTP_INTERNAL_SERVER_ERROR = 500, HTTP_METHOD_NOT_IMPLEMENTED = 501,
      HTTP_NOT_IMPLEMENTED = 501, HTTP_BAD_GATEWAY = 502,
      HTTP_SERVICE_UNAVAILABLE = 503, HTTP_GATEWAY_TIMEOUT = 504,
      HTTP_VERSION_NOT_SUPPORTED = 505, HTTP_INSUFFICIENT_STORAGE = 507,
      STDERR = 0, EMERG = 1, ALERT = 2, CRIT = 3, ERR = 4, WARN = 5,
      NOTICE = 6, INFO = 7, DEBUG = 8,
    }
    for k, v in pairs(cases) do
      assert.equal(v, constants[k], k)
    end
  end)

  it("null is cjson.null, a NULL lightuserdata", function()
    assert.equal(cjson.null, constants.null)
    assert.equal("userdata", type(constants.null))
    assert.equal(constants.null, cjson.decode("[null]")[1])
    assert.equal(constants.null, require("cjson.safe").null)
  end)

  it("apply() copies the constants onto a table", function()
    local t = constants.apply({ existing = 1 })
    assert.equal(1, t.existing)
    assert.equal(404, t.HTTP_NOT_FOUND)
    assert.equal(constants.null, t.null)
    assert.is_nil(t.apply)
  end)
end)


describe("sluice.ngx.re", function()
  describe("match", function()
    it("returns OpenResty's captures tables", function()
      local cases = {
        -- subject, regex, opts, expected view (nil: no match)
        { "hello, 1234", "([0-9]+)", nil, "0=1234 1=1234" },
        { "hello, 1234", "[0-9]+", "jo", "0=1234" },
        { "hello, 1234", "([a-z]+), (\\d+)", nil,
          "0=hello, 1234 1=hello 2=1234" },
        { "hello", "(h)(x)?(e)", nil, "0=he 1=h 2=false 3=e" },
        { "hello", "(h)(x)?", nil, "0=h 1=h 2=false" },   -- trailing group
        { "hello", "(x)|(h)", nil, "0=h 1=false 2=h" },
        { "hello", "HELLO", "i", "0=hello" },
        { "hello", "HELLO", nil, nil },
        { "a\nb", "^b", nil, nil },
        { "a\nb", "^b", "m", "0=b" },
        { "a\nb", "a.b", nil, nil },
        { "a\nb", "a.b", "s", "0=a\nb" },
        { "a b", "a\\ b # comment", "x", "0=a b" },
        { "xab", "ab", nil, "0=ab" },
        { "xab", "ab", "a", nil },
        { "ab", "ab", "a", "0=ab" },
        { "你好", "^.$", nil, nil },
        { "你好", "^..$", "u", "0=你好" },
        { "你好", "^..$", "U", "0=你好" },
        { "hello", "", nil, "0=" },
        { "hello", "l+", "d", "0=ll" },   -- 'd' accepted, not DFA
        { "x\\uy", "\\x5cu", nil, "0=\\u" },
        { "a\0b", "a\\x00b", nil, "0=a\0b" },
        { 1234, "\\d", nil, "0=1" },
      }
      for _, c in ipairs(cases) do
        local m, err = re.match(c[1], c[2], c[3])
        assert.is_nil(err)
        assert.equal(c[4], view(m), c[2])
      end
    end)

    it("collects named captures", function()
      local cases = {
        { "hello, 1234", "(?<word>[a-z]+), (?<num>\\d+)", nil,
          "0=hello, 1234 1=hello 2=1234 num=1234 word=hello" },
        { "hello", "(?<a>x)?(?<b>h)", nil, "0=h 1=false 2=h a=false b=h" },
        { "ab", "(?<n>a)|(?<n>b)", "D", "0=a 1=a 2=false n={a}" },
        { "b", "(?<n>a)|(?<n>b)", "D", "0=b 1=false 2=b n={b}" },
        { "ab", "(?<n>a)(?<n>b)", "D", "0=ab 1=a 2=b n={a,b}" },
        { "x", "(?<n>a)|(?<n>b)|x", "D", "0=x 1=false 2=false" },
      }
      for _, c in ipairs(cases) do
        local m, err = re.match(c[1], c[2], c[3])
        assert.is_nil(err)
        assert.equal(c[4], view(m), c[2])
      end
    end)

    it("uses and updates ctx.pos", function()
      local ctx = { pos = 2 }
      local m = re.match("a1b2c3", "\\d", "jo", ctx)
      assert.equal("1", m[0])
      assert.equal(3, ctx.pos)
      m = re.match("a1b2c3", "\\d", "jo", ctx)
      assert.equal("2", m[0])
      assert.equal(5, ctx.pos)
      m = re.match("a1b2c3", "\\d", "jo", ctx)
      assert.equal("3", m[0])
      assert.equal(7, ctx.pos)
      assert.is_nil(re.match("a1b2c3", "\\d", "jo", ctx))
      assert.equal(7, ctx.pos)       -- unchanged on no match
      -- pos <= 0 or missing means the start
      assert.equal("1", re.match("a1b2", "\\d", nil, { pos = 0 })[0])
      assert.equal("1", re.match("a1b2", "\\d", nil, {})[0])
      -- anchored at ctx.pos
      assert.equal("b", re.match("ab", "b", "a", { pos = 2 })[0])
    end)

    it("fills a caller-supplied res table", function()
      local res = { "stale1", "stale2", "stale3" }
      local m = re.match("hello", "(h)(e)", nil, nil, res)
      assert.equal(res, m)
      assert.same({ [0] = "he", "h", "e", "stale3" }, m)
    end)

    it("returns nil, err for a bad regex", function()
      local cases = {
        { "(", 'pcre2_compile() failed: missing closing parenthesis in "("' },
        { "a)b", 'pcre2_compile() failed: unmatched closing parenthesis '
                 .. 'in "a)b" at ")b"' },
        { "[a", 'pcre2_compile() failed: missing terminating ] for '
                .. 'character class in "[a"' },
      }
      for _, c in ipairs(cases) do
        local m, err = re.match("x", c[1], "o")
        assert.is_nil(m)
        assert.equal(c[2], err)
      end
      local from, to, err = re.find("x", "(")
      assert.is_nil(from)
      assert.is_nil(to)
      assert.matches("^pcre2_compile%(%) failed", err)
    end)

    it("raises on an unknown flag", function()
      assert.has_error(function() re.match("a", "a", "z") end,
                       'unknown flag "z" (flags "z")')
      assert.has_error(function() re.gsub("a", "a", "b", "jq") end,
                       'unknown flag "q" (flags "jq")')
    end)

    it("reports matching failures", function()
      -- 'u' checks the subject: \xff is not UTF-8 (PCRE2_ERROR_UTF8_ERR21)
      local m, err = re.match("\255", ".", "u")
      assert.is_nil(m)
      assert.equal("pcre_exec() failed: -23", err)
      -- start offset past the end (PCRE2_ERROR_BADOFFSET)
      m, err = re.match("ab", "b", nil, { pos = 10 })
      assert.is_nil(m)
      assert.equal("pcre_exec() failed: -33", err)
    end)
  end)

  it("find returns the byte range of the match or of group nth", function()
    local cases = {
      -- subject, regex, opts, nth, from, to
      { "hello, 1234", "[0-9]+", nil, nil, 8, 11 },
      { "hello, 1234", "([0-9])([0-9]+)", "jo", 2, 9, 11 },
      { "hello, 1234", "([0-9])([0-9]+)", "jo", 1, 8, 8 },
      { "hello, 1234", "([0-9])(x)?", nil, 2, nil, nil },
      { "hello", "", nil, nil, 1, 0 },
      { "hello", "z", nil, nil, nil, nil },
      { "héllo", "l+", nil, 0, 4, 5 },
    }
    for _, c in ipairs(cases) do
      local from, to, err = re.find(c[1], c[2], c[3], nil, c[4])
      assert.is_nil(err)
      assert.equal(c[5], from, c[2])
      assert.equal(c[6], to, c[2])
    end

    local from, to, err = re.find("hello", "(h)", nil, nil, 2)
    assert.is_nil(from)
    assert.is_nil(to)
    assert.equal("nth out of bound", err)

    local ctx = { pos = 3 }
    from, to = re.find("a1b2c3", "\\d", nil, ctx)
    assert.equal(4, from)
    assert.equal(4, to)
    assert.equal(5, ctx.pos)
  end)

  describe("gmatch", function()
    local function all(subj, regex, opts)
      local out = {}
      local it = assert(re.gmatch(subj, regex, opts))
      for m in it do
        out[#out + 1] = view(m)
      end
      return table.concat(out, " | ")
    end

    it("iterates over every match", function()
      local cases = {
        { "hello, world", "[a-z]+", nil, "0=hello | 0=world" },
        { "hello, world", "([a-z])[a-z]+", "jo",
          "0=hello 1=h | 0=world 1=w" },
        { "abc", "", nil, "0= | 0= | 0= | 0=" },
        { "baaac", "a*", nil, "0= | 0=aaa | 0= | 0=" },
        { "", "x*", nil, "0=" },
        { "abc", "z", nil, "" },
        { "k1=v1;k2=v2", "(?<k>\\w+)=(?<v>\\w+)", nil,
          "0=k1=v1 1=k1 2=v1 k=k1 v=v1 | 0=k2=v2 1=k2 2=v2 k=k2 v=v2" },
      }
      for _, c in ipairs(cases) do
        assert.equal(c[4], all(c[1], c[2], c[3]), c[2])
      end
    end)

    it("can be called by hand and stays exhausted", function()
      local it = re.gmatch("a1b2", "\\d")
      assert.equal("1", it()[0])
      assert.equal("2", it()[0])
      assert.is_nil(it())
      assert.is_nil(it())
    end)

    it("returns nil, err for a bad regex", function()
      local it, err = re.gmatch("x", "(")
      assert.is_nil(it)
      assert.matches("missing closing parenthesis", err)
    end)

    it("yields nil, err when a match fails", function()
      local it = re.gmatch("a\255", ".", "u")
      local m, err = it()
      assert.is_nil(m)
      assert.equal("pcre_exec() failed: -23", err)
    end)
  end)

  describe("sub and gsub", function()
    it("expand replacement templates", function()
      local cases = {
        -- fn, subject, regex, template, result, count
        { "sub", "hello, world", "[a-z]+", "howdy", "howdy, world", 1 },
        { "gsub", "hello, world", "[a-z]+", "howdy", "howdy, howdy", 2 },
        { "sub", "hello, world", "[A-Z]+", "howdy", "hello, world", 0 },
        { "sub", "hello, world", "([a-z])([a-z]+)", "[$0][$1][$2]",
          "[hello][h][ello], world", 1 },
        { "gsub", "hello, world", "([a-z])[a-z]+", "[${1}]",
          "[h], [w]", 2 },
        { "gsub", "abc", "b", "$$", "a$c", 1 },
        { "gsub", "abc", "b", "$$$0$$", "a$b$c", 1 },
        { "gsub", "abc", "(b)", "$2|$9|$10", "a||c", 1 },   -- no such group
        { "gsub", "ac", "a(x)?", "[$1]", "[]c", 1 },        -- unmatched
        { "gsub", "abab", "(a)(b)", "$2$1", "baba", 2 },
        { "gsub", "ab", "(a)", "${1}1", "a1b", 1 },
        { "gsub", "ab", "(a)", "$11", "b", 1 },             -- group 11
        { "gsub", "abc", "", "-", "-a-b-c-", 4 },
        { "gsub", "baaac", "a*", "-", "-b--c-", 4 },
        { "gsub", "", "x*", "-", "-", 1 },
        { "gsub", "héllo", "l", "L", "héLLo", 2 },
        { "sub", "k=v", "(?<key>\\w+)=(?<val>\\w+)", "${val}=${key}",
          "v=k", 1 },
        { "gsub", "a.b.c", "\\.", "", "abc", 2 },
        { "gsub", 12321, "2", "x", "1x3x1", 2 },
      }
      for _, c in ipairs(cases) do
        local res, n, err = re[c[1]](c[2], c[3], c[4])
        assert.is_nil(err)
        assert.equal(c[5], res, c[4])
        assert.equal(c[6], n, c[4])
      end
    end)

    it("reject invalid templates", function()
      local bad = { "$", "x$", "$name", "${", "${1", "${1a}", "${}", "$-",
                    "${nosuchgroup}", "${na me}" }
      for _, tpl in ipairs(bad) do
        local res, n, err = re.gsub("abc", "(?<n>b)", tpl)
        assert.is_nil(res, tpl)
        assert.is_nil(n)
        assert.equal("failed to compile the replacement template", err)
      end
    end)

    it("call a replacement function with the captures table", function()
      local seen = {}
      local res, n = re.gsub("hello, world", "([a-z])([a-z]+)",
                             function(m)
                               seen[#seen + 1] = view(m)
                               return m[1]:upper() .. m[2]
                             end, "jo")
      assert.equal("Hello, World", res)
      assert.equal(2, n)
      assert.same({ "0=hello 1=h 2=ello", "0=world 1=w 2=orld" }, seen)

      -- non-string results are tostring'd
      res, n = re.gsub("a b", "\\w", function() return 7 end)
      assert.equal("7 7", res)
      assert.equal(2, n)

      -- the function may use ngx.re itself (nested use of the match data)
      res = re.gsub("a1 b22", "(\\w)(\\d+)", function(m)
        local inner = re.gsub(m[2], "(\\d)", "<$1>", "jo")
        return m[1] .. inner
      end, "jo")
      assert.equal("a<1> b<2><2>", res)

      res = re.sub("abc", "b", function(m) return "[" .. m[0] .. "]" end)
      assert.equal("a[b]c", res)
    end)

    it("return nil, nil, err for a bad regex", function()
      local res, n, err = re.sub("a", "(", "x")
      assert.is_nil(res)
      assert.is_nil(n)
      assert.matches("^pcre2_compile%(%) failed", err)
    end)
  end)

  it("split follows lua-resty-core's ngx.re.split", function()
    local cases = {
      -- subject, regex, opts, max, expected
      { "a,b,c,d", ",", nil, nil, { "a", "b", "c", "d" } },
      { "a,b,,c", ",", nil, nil, { "a", "b", "", "c" } },
      { "a,b,,", ",", nil, nil, { "a", "b" } },         -- trailing empties
      { ",a,b", ",", nil, nil, { "", "a", "b" } },
      { "a1b2c", "(\\d)", nil, nil, { "a", "1", "b", "2", "c" } },
      { "abc", "", nil, nil, { "a", "b", "c" } },
      { "a,b,c", ",", nil, 2, { "a", "b,c" } },
      { "a,b,c", ",", nil, 1, { "a,b,c" } },
      { "a,b,", ",", nil, 5, { "a", "b", "" } },        -- max keeps them
      { "abc", ",", nil, nil, { "abc" } },
      { "a, b ,c", "\\s*,\\s*", "jo", nil, { "a", "b", "c" } },
      { "", ",", nil, nil, {} },
    }
    for _, c in ipairs(cases) do
      local res, err = re.split(c[1], c[2], c[3], nil, c[4])
      assert.is_nil(err)
      assert.same(c[5], res, c[1])
    end

    -- a caller's res table: filled, then terminated by a nil
    local res = { "x", "y", "z", "w" }
    assert.equal(res, re.split("a,b", ",", nil, nil, nil, res))
    assert.equal("a", res[1])
    assert.equal("b", res[2])
    assert.is_nil(res[3])

    assert.same({ "b", "c" }, re.split("a,b,c", ",", nil, { pos = 3 }))

    local r, err = re.split("a", "(")
    assert.is_nil(r)
    assert.matches("missing closing parenthesis", err)
    assert.has_error(function() re.split("a", ",", nil, nil, nil, "x") end,
                     "res is not a table")
  end)

  it("caches 'o' regexes, bounded", function()
    local before = re.cache_size()
    re.match("x", "cache-test-[0-9]+", "o")
    re.match("x", "cache-test-[0-9]+", "o")
    assert.equal(before + 1, re.cache_size())
    -- not cached without 'o'
    re.match("x", "cache-test-no-o")
    assert.equal(before + 1, re.cache_size())
    for i = 1, 3000 do
      re.find("x", "bound-" .. i, "jo")
    end
    assert.is_true(re.cache_size() <= 1024)
    assert.is_true(re.cache_size() >= 512)
  end)

  it("matches across many regexes with growing capture counts", function()
    -- forces the shared match data to grow
    for n = 1, 40 do
      local pat = ("(a)"):rep(n)
      local m = re.match(("a"):rep(n), pat, "jo")
      assert.equal(n + 1, #m + 1)
      assert.equal("a", m[n])
    end
  end)
end)


describe("ngx shim hot paths stay JIT-compiled", function()
  local cases = {
    { "re.match jo", function()
        for _ = 1, 500 do re.match("hello, 1234", "([0-9]+)", "jo") end
      end },
    { "re.find jo", function()
        for _ = 1, 500 do re.find("hello, 1234", "[0-9]+", "jo") end
      end },
    { "re.gsub jo", function()
        for _ = 1, 500 do re.gsub("hello, 1234", "[0-9]", "<$0>", "jo") end
      end },
    { "md5", function()
        for _ = 1, 500 do crypto.md5("hello") end
      end },
    { "base64", function()
        for _ = 1, 500 do
          crypto.decode_base64(crypto.encode_base64("hello world"))
        end
      end },
    { "crc32", function()
        for _ = 1, 500 do crypto.crc32_long("hello world") end
      end },
    { "escape_uri", function()
        for _ = 1, 500 do args.unescape_uri(args.escape_uri("a b/c")) end
      end },
    { "decode_args", function()
        for _ = 1, 500 do args.decode_args("a=1&b=x%20y&c") end
      end },
    { "now", function()
        for _ = 1, 500 do ngx_time.now() end
      end },
  }
  for _, c in ipairs(cases) do
    it(c[1], function()
      local log = jit_log(c[2])
      assert.matches("TRACE", log)
      assert.not_matches("NYI", log)
      assert.not_matches("abort", log)
      -- a C fast function the JIT cannot compile shows up as a stitch
      assert.not_matches("stitch", log)
    end)
  end
end)
