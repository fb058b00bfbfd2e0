-- trusted_ips and real_ip_header: a trusted peer's X-Forwarded-* values and
-- its real-IP header are kept; an untrusted peer's are overwritten.

local helpers = require "spec.helpers"
local cjson = require "cjson"


local function start(trusted, extra)
  local mock = assert(helpers.start_mock_upstream())
  local conf = {
    trusted_ips = trusted,
    declarative_config = {
      _format_version = "3.0",
      services = {
        { name = "echo", url = mock.url,
          routes = { { name = "r", paths = { "/t" } } } },
      },
    },
  }
  for k, v in pairs(extra or {}) do
    conf[k] = v
  end
  assert(helpers.start_kong(conf))
  return mock
end


local function echo(headers)
  local client = helpers.proxy_client(5000)
  local res = assert(client:get("/t/anything", { headers = headers }))
  local body = assert.res_status(200, res)
  client:close()
  return cjson.decode(body).headers
end


local FORWARDED = {
  ["X-Real-IP"] = "203.0.113.7",
  ["X-Forwarded-For"] = "198.51.100.1, 203.0.113.7",
  ["X-Forwarded-Proto"] = "https",
  ["X-Forwarded-Host"] = "api.example.com",
  ["X-Forwarded-Port"] = "443",
  ["X-Forwarded-Path"] = "/outer/t/anything",
  ["X-Forwarded-Prefix"] = "/outer",
}


describe("trusted_ips", function()
  local mock

  after_each(function()
    helpers.stop_kong()
    if mock then
      mock.stop()
      mock = nil
    end
  end)

  it("overwrites an untrusted peer's forwarding headers", function()
    mock = start("10.0.0.0/8")
    local h = echo(FORWARDED)
    assert.equal("127.0.0.1", h["x-real-ip"])
    assert.equal("198.51.100.1, 203.0.113.7, 127.0.0.1", h["x-forwarded-for"])
    assert.equal("http", h["x-forwarded-proto"])
    assert.equal("127.0.0.1", h["x-forwarded-host"])
    assert.not_equal("443", h["x-forwarded-port"])
    assert.equal("/t/anything", h["x-forwarded-path"])
    assert.equal("/t", h["x-forwarded-prefix"])
  end)

  it("keeps a trusted peer's values and takes the client from X-Real-IP", function()
    mock = start("127.0.0.1, ::1")
    local h = echo(FORWARDED)
    assert.equal("203.0.113.7", h["x-real-ip"])
    assert.equal("198.51.100.1, 203.0.113.7, 203.0.113.7", h["x-forwarded-for"])
    assert.equal("https", h["x-forwarded-proto"])
    assert.equal("api.example.com", h["x-forwarded-host"])
    assert.equal("443", h["x-forwarded-port"])
    assert.equal("/outer/t/anything", h["x-forwarded-path"])
    assert.equal("/outer", h["x-forwarded-prefix"])
  end)

  it("takes the last X-Forwarded-For entry, or with real_ip_recursive the last untrusted one",
     function()
    mock = start("127.0.0.0/8, 10.0.0.0/8",
                 { real_ip_header = "X-Forwarded-For" })
    local h = echo({ ["X-Forwarded-For"] = "198.51.100.1, 10.1.2.3" })
    assert.equal("10.1.2.3", h["x-real-ip"])
    helpers.stop_kong()
    mock.stop()
    mock = start("127.0.0.0/8, 10.0.0.0/8",
                 { real_ip_header = "X-Forwarded-For", real_ip_recursive = "on" })
    h = echo({ ["X-Forwarded-For"] = "198.51.100.1, 10.1.2.3" })
    assert.equal("198.51.100.1", h["x-real-ip"])
  end)

  it("ignores a real-IP header that is not an address", function()
    mock = start("127.0.0.1")
    local h = echo({ ["X-Real-IP"] = "not-an-ip" })
    assert.equal("127.0.0.1", h["x-real-ip"])
  end)

  it("refuses an invalid range at start", function()
    local ok, err = helpers.start_kong({ trusted_ips = "10.0.0.0/33" })
    assert.falsy(ok)
    assert.matches("trusted_ips", err, 1, true)
  end)
end)
