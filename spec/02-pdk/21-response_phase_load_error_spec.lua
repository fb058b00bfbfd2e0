-- Kong's load error for a plugin that implements both `response` and
-- header_filter/body_filter (kong/db/dao/plugins.lua), from `sluice start`
-- and `sluice config parse`; a plugin with only `response` loads.

local helpers = require "spec.helpers"


local PATH = helpers.ROOT .. "/spec/fixtures/custom_plugins/?.lua;;"
local MSG = 'Plugin "bad-response-filters" can\'t be loaded because it '
            .. "implements both `response` and `header_filter` or "
            .. "`body_filter` methods."


describe("plugin loading: response together with the filters", function()
  local prefix = helpers.test_conf.prefix .. "-resp-loaderr"

  local function write_conf(plugins)
    return helpers.write_conf({
      prefix = prefix,
      proxy_listen = "127.0.0.1:" .. helpers.get_available_port(),
      admin_listen = "127.0.0.1:" .. helpers.get_available_port(),
      worker_processes = 1,
      plugins = plugins,
      lua_package_path = PATH,
    })
  end

  local function start(plugins)
    local conf = write_conf(plugins)
    os.execute("mkdir -p '" .. prefix .. "/logs' '" .. prefix .. "/pids'")
    local ok, stdout, stderr, code = helpers.kong_exec("start -c '" .. conf
                                                       .. "' -p '" .. prefix
                                                       .. "'")
    if ok then
      helpers.kong_exec("stop -p '" .. prefix .. "'")
    end
    return ok, (stderr or "") .. (stdout or ""), code
  end

  it("`start` refuses it with Kong's message", function()
    local ok, out, code = start("bundled,bad-response-filters")
    assert.falsy(ok)
    assert.not_equal(0, code)
    assert.matches(MSG, out, 1, true)
  end)

  it("`config parse` refuses it too", function()
    local conf = write_conf("bundled,bad-response-filters")
    local path = helpers.make_yaml_file({ _format_version = "3.0" })
    local ok, stdout, stderr = helpers.kong_exec("config parse '" .. path
                                                 .. "' -c '" .. conf .. "'")
    assert.falsy(ok)
    assert.matches(MSG, (stderr or "") .. (stdout or ""), 1, true)
  end)

  it("a plugin with only a response handler loads", function()
    local ok, out = start("bundled,buffered-response")
    assert.truthy(ok, out)
  end)
end)
