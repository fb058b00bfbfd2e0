-- sluice.aws.sigv4 under plain luajit (no gateway): the module loads, its
-- argument checks answer nil, "field: ..." without raising, signing says
-- clearly that the C signer is only in the gateway, and canonical_query
-- (pure Lua) agrees with the independent reference and the AWS suite.
-- The signer itself is covered by 10-gateway_spec.lua and core/test.

local helpers = require "spec.helpers"
local ref = require "spec.04-plugins.50-sigv4.sigv4_ref"


local function opts(extra)
  local o = {
    method = "GET", host = "example.amazonaws.com", region = "us-east-1",
    service = "service", access_key = "AKID", secret_key = "SECRET",
    timestamp = 1440938160,
  }
  for k, v in pairs(extra or {}) do
    o[k] = v
  end
  return o
end


describe("sluice.aws.sigv4 (plain luajit)", function()
  local sigv4

  setup(function()
    sigv4 = require "sluice.aws.sigv4"
  end)

  it("loads, and signing outside the gateway is a clear error", function()
    for _, fn in ipairs({ "sign", "presign", "debug_sign" }) do
      local v, err = sigv4[fn](opts())
      assert.is_nil(v)
      assert.matches("C signer is not available", err, nil, true)
    end
    local s, err = sigv4.cache_stats()
    assert.is_nil(s)
    assert.matches("not available", err, nil, true)
  end)

  it("checks arguments before reaching C, without raising", function()
    local cases = {
      { "x", "^opts: table expected, got string" },
      { opts({ host = 1 }), "^host: string expected, got number" },
      { opts({ port = 0 }), "^port: integer 1%-65535" },
      { opts({ port = 1.5 }), "^port: " },
      { opts({ tls = 1 }), "^tls: boolean expected" },
      { opts({ query = true }), "^query: string or table expected" },
      { opts({ query = { [1] = "a" } }), "^query: names must be strings" },
      { opts({ headers = { [1] = "a" } }), "^headers: names must be strings" },
      { opts({ headers = { A = true } }), "^headers: value of 'A' must be" },
      { opts({ timestamp = 0 / 0 }), "^timestamp: " },
      { opts({ timestamp = 253402300800 }), "^timestamp: " },
      { opts({ normalize_path = "no" }), "^normalize_path: boolean" },
      { opts({ content_sha256_header = 1 }), "^content_sha256_header: " },
      { opts({ session_token_after = "y" }), "^session_token_after: " },
      { opts({ session_token = 5 }), "^session_token: string expected" },
    }
    for i, c in ipairs(cases) do
      local ok, v, err = pcall(sigv4.sign, c[1])
      assert.is_true(ok, "case " .. i .. " raised: " .. tostring(v))
      assert.is_nil(v)
      assert.matches(c[2], err)
    end
    local ok, url, err = pcall(sigv4.presign, opts({ expires = -5 }))
    assert.is_true(ok)
    assert.is_nil(url)
    assert.matches("^expires: ", err)
  end)

  it("canonical_query agrees with the reference", function()
    local inputs = {
      "", "a=1", "b=2&a=1", "a=2&a=1&a=10", "k", "k=&k", "x=%41%42",
      "sp=a b", "plus=a+b", "u=%E1%88%B4", "Param=1&param=2&Param-3=3",
      "e=a=b", "%2F=%2f", "~-._=~-._", "&&z=1&&",
    }
    for _, q in ipairs(inputs) do
      assert.equal(ref.canonical_query(q), (sigv4.canonical_query(q)), q)
    end
    -- random printable queries
    math.randomseed(42)
    local alphabet = "abcAB09-_.~ +*/$:=&%"
    for _ = 1, 300 do
      local t = {}
      for i = 1, math.random(0, 24) do
        local k = math.random(#alphabet)
        t[i] = alphabet:sub(k, k)
      end
      local q = table.concat(t):gsub("%%", "%%25")
      assert.equal(ref.canonical_query(q), (sigv4.canonical_query(q)), q)
    end
  end)

  it("canonical_query gives every suite case's query line", function()
    local dir = ref.suite_dir(helpers.ROOT)
    if not dir then
      io.stderr:write(ref.SKIP, "\n")
      pending(ref.SKIP)
      return
    end
    local n = 0
    for _, c in ipairs(ref.cases(dir)) do
      local r = ref.parse_req(ref.read(c.dir .. "/" .. c.name .. ".req"))
      local creq = ref.read(c.dir .. "/" .. c.name .. ".creq")
      local want = creq:match("^[^\n]*\n[^\n]*\n([^\n]*)\n")
      assert.equal(want, (sigv4.canonical_query(r.query)), c.rel)
      n = n + 1
    end
    assert.equal(34, n)
  end)

  it("canonical_query refuses bad escapes and control characters", function()
    for _, q in ipairs({ "a=%", "a=%4", "a=%G1", "%%41=1", "a=b\nc",
                         "a=#" }) do
      local s, err = sigv4.canonical_query(q)
      assert.is_nil(s, q)
      assert.matches("^query: ", err)
    end
    assert.equal("on=", sigv4.canonical_query({ on = true, off = false }))
  end)
end)
