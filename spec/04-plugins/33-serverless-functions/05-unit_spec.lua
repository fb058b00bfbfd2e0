-- pre-function / post-function handlers without the runtime: the handler
-- methods are called directly, with a mock `kong` and an `ngx` that records
-- what the chunks do. Covers the lazy per-config compile, the order of the
-- chunks, the "return a function" convention and its first-run flag, and
-- the sandbox the chunks run in. Request-level behaviour (exits, 500s) is
-- in 02-access_spec.lua.

-- kong.plugins.<name>.<module> -> plugins/<name>/<module>.lua, as the
-- runtime maps them
if not package.searchpath("kong.plugins.pre-function.handler", package.path)
then
  table.insert(package.loaders, 2, function(name)
    local plugin, mod = name:match("^kong%.plugins%.([^.]+)%.(.+)$")
    if not plugin then
      return nil
    end
    local path = "plugins/" .. plugin .. "/" .. mod:gsub("%.", "/") .. ".lua"
    local f = io.open(path)
    if not f then
      return "\n\tno file '" .. path .. "'"
    end
    f:close()
    return assert(loadfile(path))
  end)
end


local PHASES = { "certificate", "rewrite", "access", "header_filter",
                 "body_filter", "log" }
local EXPECTED = {
  ["pre-function"] = 1000000,
  ["post-function"] = -1000,
}


-- What the chunks record through ngx.record(...)
local records


-- A config with every phase present, as the schema leaves it.
local function conf(phases)
  local c = {}
  for _, p in ipairs(PHASES) do
    c[p] = phases[p] or {}
  end
  return c
end


-- Runs handler:<phase>(config) in a coroutine, as the runtime does for
-- access; returns "done", "exited" (the chunk yielded away, as
-- kong.response.exit does, and is never resumed) or "error", err.
local function call(handler, phase, config)
  local co = coroutine.create(function()
    handler[phase](handler, config)
  end)
  local ok, err = coroutine.resume(co)
  if not ok then
    return "error", err
  end
  if coroutine.status(co) == "suspended" then
    return "exited"
  end
  return "done"
end


for plugin_name, priority in pairs(EXPECTED) do
  describe("Plugin: " .. plugin_name .. " handler", function()
    local handler

    lazy_setup(function()
      handler = require("kong.plugins." .. plugin_name .. ".handler")
    end)

    before_each(function()
      records = {}
      _G.kong = {
        configuration = { untrusted_lua = "sandbox", pg_password = "pw" },
      }
      _G.ngx = {
        record = function(v)
          records[#records + 1] = v
        end,
        -- an exit that never comes back, like kong.response.exit in access
        exit = function()
          coroutine.yield()
        end,
      }
    end)

    after_each(function()
      _G.kong = nil
      _G.ngx = nil
      _G.leaked = nil
    end)

    it("has Kong's PRIORITY and VERSION", function()
      assert.equal(priority, handler.PRIORITY)
      assert.equal(require("kong.meta").version, handler.VERSION)
      assert.equal("3.10.0", handler.VERSION)
    end)

    it("implements the six phases and no response", function()
      for _, p in ipairs(PHASES) do
        assert.is_function(handler[p], p)
      end
      assert.is_nil(handler.response)
    end)

    for _, phase in ipairs(PHASES) do
      it("runs the chunks of " .. phase .. " in order, and only them",
         function()
        local phases = {}
        for _, p in ipairs(PHASES) do
          phases[p] = { "ngx.record('" .. p .. ":1')",
                        "ngx.record('" .. p .. ":2')",
                        "ngx.record('" .. p .. ":3')" }
        end
        local config = conf(phases)
        assert.equal("done", call(handler, phase, config))
        assert.same({ phase .. ":1", phase .. ":2", phase .. ":3" }, records)
      end)
    end

    it("does nothing in a phase without chunks", function()
      local config = conf({ access = { "ngx.record('a')" } })
      for _, p in ipairs(PHASES) do
        if p ~= "access" then
          assert.equal("done", call(handler, p, config))
        end
      end
      assert.same({}, records)
    end)

    -- { what, chunk, calls, expected records }
    local cases = {
      { "a plain chunk runs whole each time",
        "ngx.record('body')", 3, { "body", "body", "body" } },
      { "a returned function replaces its chunk",
        "ngx.record('init') return function() ngx.record('run') end", 3,
        { "init", "run", "run", "run" } },
      { "upvalues persist between calls",
        "local n = 0 return function() n = n + 1 ngx.record(n) end", 3,
        { 1, 2, 3 } },
      { "a non-function return value is ignored",
        "ngx.record('x') return 42", 2, { "x", "x" } },
      { "an exit in the returned function does not redo the set-up",
        "ngx.record('init') return function() ngx.record('run') " ..
        "ngx.exit(200) end", 3, { "init", "run", "run", "run" } },
      { "an exit in a plain chunk runs it whole next time",
        "ngx.record('body') ngx.exit(200) ngx.record('never')", 2,
        { "body", "body" } },
    }
    for _, c in ipairs(cases) do
      it(c[1], function()
        local config = conf({ access = { c[2] } })
        for _ = 1, c[3] do
          local status = call(handler, "access", config)
          assert.is_not_equal("error", status)
        end
        assert.same(c[4], records)
      end)
    end

    it("an exit in the first chunk skips the later ones", function()
      local config = conf({ access = { "ngx.record(1) ngx.exit(400)",
                                       "ngx.record(2)" } })
      assert.equal("exited", call(handler, "access", config))
      assert.same({ 1 }, records)
    end)

    it("compiles once per config table, again for a new one", function()
      local chunk = "ngx.record('init') return function() end"
      local config = conf({ access = { chunk } })
      call(handler, "access", config)
      call(handler, "access", config)
      assert.same({ "init" }, records)
      -- a config rebuild hands a new table with the same content
      call(handler, "access", conf({ access = { chunk } }))
      assert.same({ "init", "init" }, records)
    end)

    it("keeps closures apart per phase and per chunk", function()
      local counter = "local n = 0 return function() n = n + 1 " ..
                      "ngx.record(%q .. n) end"
      local config = conf({
        access = { counter:format("a"), counter:format("b") },
        log = { counter:format("l") },
      })
      call(handler, "access", config)
      call(handler, "log", config)
      call(handler, "access", config)
      assert.same({ "a1", "b1", "l1", "a2", "b2" }, records)
    end)

    it("compiles lazily: a bad chunk fails when its config first runs",
       function()
      local config = conf({ access = { "print(" } })
      local status, err = call(handler, "access", config)
      assert.equal("error", status)
      assert.matches([[[string "print("]:1: unexpected symbol]], err, nil,
                     true)
    end)

    it("refuses to run with untrusted_lua = off", function()
      _G.kong.configuration.untrusted_lua = "off"
      local config = conf({ access = { "ngx.record('ran')" } })
      local status, err = call(handler, "access", config)
      assert.equal("error", status)
      assert.matches("'untrusted_lua' config option is set to 'off'", err,
                     nil, true)
      assert.same({}, records)
    end)

    it("lets a runtime error through (the runtime answers 500)",
       function()
      local config = conf({ access = { "error('boom')" } })
      local status, err = call(handler, "access", config)
      assert.equal("error", status)
      assert.matches("boom", err, nil, true)
    end)

    it("runs the chunks in the sandbox", function()
      local config = conf({ access = {
        "ngx.record(kong.configuration.pg_password)",
        "ngx.record(type(load)) leaked = 1",
        "ngx.record(pcall(require, 'cjson'))",
      } })
      assert.equal("done", call(handler, "access", config))
      assert.same({ "******", "nil", false }, records)
      assert.is_nil(rawget(_G, "leaked"))
    end)
  end)
end


describe("Plugin: serverless-functions", function()
  it("pre-function runs before post-function", function()
    local pre = require "kong.plugins.pre-function.handler"
    local post = require "kong.plugins.post-function.handler"
    assert(pre.PRIORITY > post.PRIORITY)
    assert.is_not_equal(pre, post)
  end)
end)
