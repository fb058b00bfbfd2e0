-- pre-function / post-function through the gateway (Kong's
-- spec/03-plugins/33-serverless-functions/02-access_spec.lua): request
-- termination (ngx.exit, ngx.say, kong.response.exit, cascading chunks,
-- runtime error -> 500), invocation counts with and without the closure
-- convention, what the sandbox exposes, and #9246.
--
-- PENDING: every test waits for the Lua runtime (phases, kong.* PDK,
-- kong.configuration). To enable: set RUNTIME = true and remove the
-- pending() lines.

local helpers = require "spec.helpers"
local cjson = require "cjson"


local RUNTIME = true


local mock_fn_one = [[
  ngx.status = 503
  ngx.exit(ngx.status)
]]

local mock_fn_two = [[
  ngx.status = 404
  ngx.say("Not Found")
  ngx.exit(ngx.status)
]]

local mock_fn_three = [[
  return kong.response.exit(406, { message = "Invalid" })
]]

local mock_fn_four = [[
  ngx.status = 400
]]

local mock_fn_five = [[
  ngx.exit(ngx.status)
]]

local mock_fn_six = [[
  local count = 0
  ngx.log(ngx.ERR, "mock_fn_six: initialization ran")
  return function()
    ngx.log(ngx.ERR, "mock_fn_six: function ran")
    count = count + 1
    ngx.status = 200
    ngx.say(ngx.worker.pid() * 1000 + count)
    ngx.exit(ngx.status)
  end
]]

local mock_fn_seven = [[
  ngx.req.read_body()

  local count = tonumber(ngx.req.get_body_data())
  count = count + 1

  ngx.status = 200
  ngx.say(count)
  ngx.exit(ngx.status)
]]

-- seven in the closure form
local mock_fn_eight = "return function() \n" .. mock_fn_seven .. "\n end"

local mock_fn_nine = [[
  error("this should stop the request with a 500")
]]

local mock_fn_ten = [[
  ngx.var.args = nil
]]

-- the cache is reachable
local mock_fn_eleven = [[
  local ok, err = kong.cache:get("foo", nil, function() return "val" end)
  if err then
    ngx.exit(500)
  end
  local v = kong.cache:get("foo")
  ngx.status = 200
  ngx.say(v)
  ngx.exit(ngx.status)
]]

-- but not the gateway internals behind it
local mock_fn_twelve = [[
  ngx.status = 200
  ngx.say(tostring(kong.cache.cluster_events))
  ngx.exit(ngx.status)
]]

-- kong.configuration is readable
local mock_fn_thirteen = [[
  ngx.status = 200
  ngx.say(kong.configuration.plugins[1])
  ngx.exit(ngx.status)
]]

-- except its secrets
local mock_fn_fourteen = [[
  ngx.status = 200
  ngx.say(kong.configuration.pg_password)
  ngx.exit(ngx.status)
]]


-- { host prefix, access chunks }
local ROUTES = {
  { "one", { mock_fn_one } },
  { "two", { mock_fn_two } },
  { "three", { mock_fn_three } },
  { "four", { mock_fn_four, mock_fn_five } },
  { "six", { mock_fn_six } },
  { "seven", { mock_fn_seven } },
  { "eight", { mock_fn_eight } },
  { "nine", { mock_fn_nine } },
  { "ten", { mock_fn_ten } },
  { "eleven", { mock_fn_eleven } },
  { "twelve", { mock_fn_twelve } },
  { "thirteen", { mock_fn_thirteen } },
  { "fourteen", { mock_fn_fourteen } },
}


local function declarative_config(plugin_name, upstream_url)
  local routes = {}
  for i, r in ipairs(ROUTES) do
    routes[i] = {
      name = r[1],
      hosts = { r[1] .. "." .. plugin_name .. ".test" },
      plugins = {
        { name = plugin_name, config = { access = r[2] } },
      },
    }
  end
  return {
    _format_version = "3.0",
    services = {
      { name = "service-1", url = upstream_url, routes = routes },
    },
  }
end


describe("Plugin: serverless-functions", function()
  it("priority of plugins", function()
    local pre = require "kong.plugins.pre-function.handler"
    local post = require "kong.plugins.post-function.handler"
    assert(pre.PRIORITY > post.PRIORITY, "expected the priority of PRE (" ..
           tostring(pre.PRIORITY) .. ") to be higher than POST (" ..
           tostring(post.PRIORITY) .. ")")
  end)
end)


for _, plugin_name in ipairs({ "pre-function", "post-function" }) do
  describe("Plugin: " .. plugin_name .. " access", function()
    local client, mock

    local function host(prefix)
      return prefix .. "." .. plugin_name .. ".test"
    end

    lazy_setup(function()
      if not RUNTIME then
        return
      end
      mock = helpers.start_mock_upstream()
      assert(helpers.start_kong({
        plugins = "bundled",
        -- a secret for the sandbox to hide
        pg_password = "hunter2",
        declarative_config = declarative_config(plugin_name, mock.url),
      }))
    end)

    lazy_teardown(function()
      if not RUNTIME then
        return
      end
      helpers.stop_kong()
      if mock then
        mock.stop()
      end
    end)

    before_each(function()
      if RUNTIME then
        client = helpers.proxy_client()
      end
    end)

    after_each(function()
      if client then
        client:close()
        client = nil
      end
    end)


    describe("request termination", function()
      it("using ngx.exit()", function()
        local res = assert(client:send {
          method = "GET",
          path = "/status/200",
          headers = { ["Host"] = host("one") },
        })
        assert.res_status(503, res)
      end)

      it("with upvalues", function()
        local results = {}
        for _ = 1, 50 do
          local res = assert(client:send {
            method = "GET",
            path = "/status/200",
            headers = { ["Host"] = host("six") },
          })
          local body = assert.res_status(200, res)
          assert.is_string(body)
          -- the closure's counter: never the same value twice
          assert.is_nil(results[body])
          results[body] = true
        end
      end)

      it("using ngx.status and exit", function()
        local res = assert(client:send {
          method = "GET",
          path = "/status/200",
          headers = { ["Host"] = host("two") },
        })
        local body = assert.res_status(404, res)
        assert.same("Not Found", body)
      end)

      it("import response utility and send message", function()
        local res = assert(client:send {
          method = "GET",
          path = "/status/200",
          headers = { ["Host"] = host("three") },
        })
        local body = assert.res_status(406, res)
        local json = cjson.decode(body)
        assert.not_nil(json)
        assert.matches("Invalid", json.message)
      end)

      it("cascading functions for a 400 and exit", function()
        local res = assert(client:send {
          method = "GET",
          path = "/status/200",
          headers = { ["Host"] = host("four") },
        })
        local body = assert.res_status(400, res)
        assert.matches("Bad request", body)
      end)

      it("runtime error aborts with a 500", function()
        local res = assert(client:send {
          method = "GET",
          path = "/status/200",
          headers = { ["Host"] = host("nine") },
        })
        local body = assert.res_status(500, res)
        local json = cjson.decode(body)
        assert.not_nil(json)
        assert.matches("An unexpected error occurred", json.message)
      end)
    end)


    describe("invocation count", function()
      -- { what, host prefix, requests }
      local cases = {
        { "once on initialization", "seven", 1 },
        { "on repeated calls", "seven", 10 },
        { "once on initialization, with upvalues", "eight", 1 },
        { "on repeated calls, with upvalues", "eight", 10 },
      }
      for _, c in ipairs(cases) do
        it(c[1], function()
          local count = 0
          for _ = 1, c[3] do
            local res = assert(client:send {
              method = "POST",
              path = "/status/200",
              headers = {
                ["Host"] = host(c[2]),
                ["Content-Length"] = #tostring(count),
              },
              body = tostring(count),
            })
            -- each request runs the chunk (or its function) exactly once
            count = tonumber(assert.res_status(200, res))
          end
          assert.equal(c[3], count)
        end)
      end
    end)


    describe("sandbox access", function()
      -- { what, host prefix, expected body (stripped; a pattern when 4th
      -- is true) }
      local cases = {
        { "can access cache", "eleven", "val" },
        { "cannot access gateway information through the cache", "twelve",
          "nil" },
        { "can access kong.configuration fields", "thirteen", "bundled" },
        { "redacts sensitive configuration fields", "fourteen",
          "^%*%*%*%*%*%*$", true },
      }
      for _, c in ipairs(cases) do
        it(c[1], function()
          local res = assert(client:send {
            method = "GET",
            path = "/status/200",
            headers = { ["Host"] = host(c[2]) },
          })
          local body = assert.res_status(200, res)
          if c[4] then
            assert.matches(c[3], body)
          else
            assert.equal(c[3], body)
          end
        end)
      end
    end)


    describe("issues", function()
      it("does not crash even when query is cleared, #9246", function()
        local res = client:get("/status/200?a=b", {
          headers = { ["Host"] = host("ten") },
        })
        local body = assert.res_status(200, res)
        local json = cjson.decode(body)
        assert.same({}, json.uri_args)
      end)
    end)
  end)
end
