-- A third-party plugin as users install it: `luarocks make` of
-- spec/fixtures/thirdparty/kong-plugin-hello into a private tree (offline,
-- builtin build type), then the gateway started with `plugins =
-- bundled,hello` and that tree on `lua_package_path`.

local helpers = require "spec.helpers"
local cjson = require "cjson.safe"


local FIXTURE = helpers.ROOT .. "/spec/fixtures/thirdparty/kong-plugin-hello"
local ROCKSPEC = "kong-plugin-hello-0.1.0-1.rockspec"


local function sh(cmd)
  local f = io.popen(cmd .. " 2>&1; echo \"rc=$?\"")
  local out = f:read("*a")
  f:close()
  local rc = tonumber(out:match("rc=(%d+)%s*$"))
  return rc, out
end


describe("a luarocks-installed plugin", function()
  local mock, tree, client

  lazy_setup(function()
    tree = os.tmpname()
    os.remove(tree)
    assert(os.execute("mkdir -p '" .. tree .. "'") == 0)
    local rc, out = sh("cd '" .. FIXTURE .. "' && luarocks --lua-version=5.1 "
                       .. "--tree '" .. tree .. "' make " .. ROCKSPEC)
    assert(rc == 0, "luarocks make failed:\n" .. out)

    mock = helpers.start_mock_upstream()
    assert(helpers.start_kong({
      plugins = "bundled,hello",
      lua_package_path = tree .. "/share/lua/5.1/?.lua;;",
      declarative_config = {
        _format_version = "3.0",
        services = {
          { name = "hello", url = mock.url,
            routes = {
              { name = "hello", paths = { "/hello" },
                plugins = { { name = "hello" } } },
              { name = "bonjour", paths = { "/bonjour" },
                plugins = { { name = "hello",
                              config = { greeting = "Bonjour",
                                         default_name = "le monde" } } } },
              { name = "plain", paths = { "/plain" } },
            } },
        },
      },
    }))
  end)

  lazy_teardown(function()
    helpers.stop_kong()
    if mock then
      mock.stop()
    end
    if tree then
      os.execute("rm -rf '" .. tree .. "'")
    end
  end)

  before_each(function()
    client = helpers.proxy_client()
  end)

  after_each(function()
    if client then
      client:close()
    end
  end)


  it("was installed into the tree by luarocks", function()
    local f = io.open(tree .. "/share/lua/5.1/kong/plugins/hello/handler.lua")
    assert.truthy(f)
    f:close()
    local rc, out = sh("luarocks --lua-version=5.1 --tree '" .. tree
                       .. "' list --porcelain")
    assert.equal(0, rc)
    assert.matches("kong-plugin-hello", out, 1, true)
  end)

  it("runs with its schema defaults", function()
    local res = client:get("/hello")
    local e = cjson.decode(assert.res_status(200, res))
    assert.equal("Hello, World!", res.headers["X-Hello"])
    assert.equal("World", e.headers["x-hello-upstream"])
  end)

  it("reads the request", function()
    local res = client:get("/hello", { query = { name = "Sluice" } })
    local e = cjson.decode(assert.res_status(200, res))
    assert.equal("Hello, Sluice!", res.headers["X-Hello"])
    assert.equal("Sluice", e.headers["x-hello-upstream"])
  end)

  it("takes its configuration from kong.yml", function()
    local res = client:get("/bonjour")
    assert.res_status(200, res)
    assert.equal("Bonjour, le monde!", res.headers["X-Hello"])
  end)

  it("only where it is configured", function()
    local res = client:get("/plain")
    assert.res_status(200, res)
    assert.is_nil(res.headers["X-Hello"])
  end)

  it("logs through kong.log with its namespace", function()
    assert.res_status(200, client:get("/hello", { query = { name = "Log" } }))
    assert.logfile().has.line("[hello] said Hello, Log!", true, 5)
  end)

  it("is refused when `plugins` does not enable it", function()
    local conf = helpers.write_conf({
      prefix = helpers.test_conf.prefix .. "-hello-off",
      plugins = "bundled",
      lua_package_path = tree .. "/share/lua/5.1/?.lua;;",
    })
    local yml = helpers.make_yaml_file({
      _format_version = "3.0",
      plugins = { { name = "hello" } },
    })
    local ok, stdout, stderr = helpers.kong_exec("config parse '" .. yml
                                                 .. "' -c '" .. conf .. "'")
    assert.falsy(ok)
    assert.matches("plugin 'hello' not enabled; add it to the 'plugins' "
                   .. "configuration property", (stderr or "")
                   .. (stdout or ""), 1, true)
  end)

  it("is not found without the tree on lua_package_path", function()
    local conf = helpers.write_conf({
      prefix = helpers.test_conf.prefix .. "-hello-nopath",
      plugins = "bundled,hello",
    })
    local yml = helpers.make_yaml_file({ _format_version = "3.0" })
    local ok, stdout, stderr = helpers.kong_exec("config parse '" .. yml
                                                 .. "' -c '" .. conf .. "'")
    assert.falsy(ok)
    assert.matches("hello plugin is enabled but not installed",
                   (stderr or "") .. (stdout or ""), 1, true)
  end)
end)
