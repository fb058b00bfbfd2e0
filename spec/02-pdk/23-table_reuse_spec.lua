-- Per-request Lua tables of the runloop are reused: the list of plugins
-- collected for a request (flat, no table per plugin) comes from a pool and
-- goes back when the request is done, so consecutive requests on a worker
-- use the same table.

local helpers = require "spec.helpers"


describe("per-request tables", function()
  local mock

  lazy_setup(function()
    mock = helpers.start_mock_upstream()
    assert(helpers.start_kong({
      plugins = "bundled",
      nginx_worker_processes = 1,
      untrusted_lua = "on",
      declarative_config = {
        _format_version = "3.0",
        services = { { name = "s", url = mock.url, routes = { {
          name = "r", paths = { "/r" },
          plugins = {
            { name = "pre-function", config = { header_filter = { [[
              local c = ngx.ctx.__collected
              kong.response.set_header("X-Collected", tostring(c))
              kong.response.set_header("X-Collected-N", #c)
            ]] } } },
            { name = "post-function", config = { access = { "local _ = 1" } } },
          },
        } } } },
      },
    }))
  end)

  lazy_teardown(function()
    helpers.stop_kong()
    mock:stop()
  end)

  it("gives the plugin list of one request to the next", function()
    local seen = {}
    for i = 1, 5 do
      local client = helpers.proxy_client()
      local res = assert(client:get("/r"))
      assert.res_status(200, res)
      client:close()
      -- pre-function and post-function, each as (plugin, conf)
      assert.equal("4", res.headers["X-Collected-N"])
      seen[i] = res.headers["X-Collected"]
    end
    assert.matches("^table: 0x%x+$", seen[1])
    for i = 2, 5 do
      assert.equal(seen[1], seen[i])
    end
  end)
end)
