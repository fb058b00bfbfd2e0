-- pre-function / post-function code in a declarative config is checked,
-- never run, when the config is loaded (Kong/kong#5110; Kong's
-- spec/03-plugins/33-serverless-functions/03-dbless_spec.lua); it runs on
-- the first request instead.

local helpers = require "spec.helpers"
local cjson = require "cjson"


for _, plugin_name in ipairs({ "pre-function", "post-function" }) do
  describe("Plugin: " .. plugin_name .. " (dbless)", function()
    local admin_client, proxy_client, mock

    local function config(code)
      return table.concat({
        '_format_version: "3.0"',
        "services:",
        "- name: svc",
        "  url: " .. mock.url,
        "  routes:",
        "  - name: r",
        "    hosts: [ \"dbless." .. plugin_name .. ".test\" ]",
        "plugins:",
        "- name: " .. plugin_name,
        "  config:",
        "    access:",
        "    - |",
        "      " .. code,
      }, "\n") .. "\n"
    end

    lazy_setup(function()
      mock = helpers.start_mock_upstream()
      assert(helpers.start_kong({ database = "off", plugins = "bundled" }))
    end)

    lazy_teardown(function()
      helpers.stop_kong()
      if mock then
        mock.stop()
      end
    end)

    before_each(function()
      admin_client = helpers.admin_client()
      proxy_client = helpers.proxy_client()
    end)

    after_each(function()
      if admin_client then
        admin_client:close()
        proxy_client:close()
        admin_client, proxy_client = nil, nil
      end
    end)

    it("does not execute the function when loading the config (#5110)",
       function()
      local log = helpers.error_log()
      helpers.clean_logfile(log)
      local res = assert(admin_client:send {
        method = "POST",
        path = "/config",
        body = { config = config(
          'kong.log.err("ran-at-" .. ngx.get_phase()) ' ..
          'return kong.response.exit(418)') },
        headers = { ["Content-Type"] = "application/json" },
      })
      assert.res_status(201, res)
      local logged = helpers.file.read(log) or ""
      assert.is_nil(logged:find("ran-at-", 1, true))

      -- it runs on the request instead
      helpers.wait_until(function()
        local r = proxy_client:get("/", {
          headers = { ["Host"] = "dbless." .. plugin_name .. ".test" },
        })
        return r.status == 418
      end, 5)
      logged = helpers.file.read(log) or ""
      assert.truthy(logged:find("ran-at-access", 1, true))
    end)

    it("rejects a config with invalid Lua, at config.access[1]", function()
      local res = assert(admin_client:send {
        method = "POST",
        path = "/config",
        body = { config = config("print(") },
        headers = { ["Content-Type"] = "application/json" },
      })
      local body = assert.res_status(400, res)
      local json = cjson.decode(body)
      assert.matches("error parsing " .. plugin_name .. ": [string",
                     cjson.encode(json.fields), nil, true)
    end)
  end)
end
