-- kong.tools.sandbox (Kong's spec/01-unit/20-sandbox_spec.lua, extended):
-- the untrusted_lua levels, text-only loading, the read-only stdlib subset,
-- the environment built from kong.conf, the fake require, the redacted
-- kong.configuration and the privacy of global writes. Runs in plain
-- luajit: `kong` is a mock set and cleared around each test.

local sandbox = require "kong.tools.sandbox"


local fmt = string.format
local OFF_MSG = "loading of untrusted Lua code disabled because " ..
                "'untrusted_lua' config option is set to 'off'"
local BYTECODE = string.dump(function() return 42 end)


-- Sets the mock kong global for one test.
local function set_conf(conf)
  _G.kong = { configuration = conf }
  sandbox.configuration:clear()
end


local function run(code, opts, ...)
  return sandbox.sandbox(code, opts)(...)
end


-- The error a call raises, or nil.
local function raised(fn, ...)
  local ok, err = pcall(fn, ...)
  if ok then
    return nil
  end
  return err
end


describe("kong.tools.sandbox", function()
  after_each(function()
    _G.kong = nil
    sandbox.configuration:clear()
  end)


  describe("untrusted_lua levels", function()
    lazy_setup(function()
      _G.hello_world = "Hello World"
    end)

    lazy_teardown(function()
      _G.hello_world = nil
    end)

    -- { level, sees _G.hello_world, sees load }
    local cases = {
      { "on", true, true },
      { "sandbox", false, false },
      { nil, false, false },            -- kong.conf without the property
      { "bogus", false, false },        -- unknown: the sandbox
    }
    for _, c in ipairs(cases) do
      local level, sees_g, sees_load = c[1], c[2], c[3]

      it(fmt("untrusted_lua = %s: _G %s", tostring(level),
             sees_g and "readable" or "hidden"), function()
        set_conf({ untrusted_lua = level })
        local hw, ld = run("return hello_world, load")
        assert.equal(sees_g and "Hello World" or nil, hw)
        assert.equal(sees_load, ld ~= nil)
      end)
    end

    it("without a kong global the level is 'sandbox'", function()
      _G.kong = nil
      assert.is_nil(run("return hello_world"))
      assert.equal("aaa", run("return string.rep('a', 3)"))
      assert.is_nil(run("return load"))
    end)

    -- every entry point refuses to compile with untrusted_lua = off
    local off_cases = {
      { "sandbox", function() return sandbox.sandbox("return 42") end },
      { "sandbox_lua", function() return sandbox.sandbox_lua("return 1") end },
      { "parse", function()
          return sandbox.parse("return function() end")
        end },
    }
    for _, c in ipairs(off_cases) do
      it("untrusted_lua = off: " .. c[1] .. " raises", function()
        set_conf({ untrusted_lua = "off" })
        local err = raised(c[2])
        assert.is_string(err)
        assert.truthy(err:find(OFF_MSG, 1, true))
      end)
    end

    it("untrusted_lua = off: validate and validate_safe fail", function()
      set_conf({ untrusted_lua = "off" })
      local ok, err = sandbox.validate("return function() end")
      assert.is_false(ok)
      assert.equal("Error parsing function: " .. OFF_MSG, err)
      ok, err = sandbox.validate_safe("return 1")
      assert.is_false(ok)
      assert.equal("Error parsing function: " .. OFF_MSG, err)
      assert.equal(OFF_MSG, sandbox.configuration.err_msg)
    end)

    it("settings are read again when kong.configuration is replaced",
       function()
      set_conf({ untrusted_lua = "on" })
      assert.equal("Hello World", run("return hello_world"))
      -- no clear(): a new configuration table is enough
      _G.kong.configuration = { untrusted_lua = "off" }
      assert.truthy(raised(sandbox.sandbox, "return 1"))
      _G.kong.configuration = { untrusted_lua = "sandbox" }
      assert.is_nil(run("return hello_world"))
    end)

    it("configuration:clear() forgets settings of the same table",
       function()
      local conf = { untrusted_lua = "on" }
      set_conf(conf)
      assert.is_true(sandbox.configuration.enabled)
      assert.is_false(sandbox.configuration.sandbox_enabled)
      conf.untrusted_lua = "off"
      assert.is_true(sandbox.configuration.enabled)   -- cached
      sandbox.configuration:clear()
      assert.is_false(sandbox.configuration.enabled)
    end)
  end)


  describe("text-only load", function()
    local levels = { "on", "sandbox" }
    for _, level in ipairs(levels) do
      it("refuses bytecode with untrusted_lua = " .. level, function()
        set_conf({ untrusted_lua = level })
        -- the same code as text is fine
        assert.equal(42, run("return 42"))
        local err = raised(sandbox.sandbox, BYTECODE)
        assert.is_string(err)
        assert.matches("wrong mode", err, nil, true)
        -- asking for binary mode does not help
        assert.truthy(raised(sandbox.sandbox, BYTECODE, { mode = "b" }))
        assert.truthy(raised(sandbox.sandbox, BYTECODE, nil, "bt"))
        local ok = sandbox.validate_safe(BYTECODE)
        assert.is_false(ok)
      end)
    end

    it("refuses bytecode in sandbox_lua", function()
      assert.truthy(raised(sandbox.sandbox_lua, BYTECODE))
    end)

    it("refuses a non-string chunk", function()
      local err = raised(sandbox.sandbox, function() end)
      assert.matches("expected a string", err, nil, true)
    end)

    it("reports syntax errors with the chunk as its name", function()
      local err = raised(sandbox.sandbox, "print(")
      assert.equal([[[string "print("]:1: unexpected symbol near '<eof>']],
                   err)
      err = raised(sandbox.sandbox, "print(", { chunkname = "=mine" })
      assert.equal("mine:1: unexpected symbol near '<eof>'", err)
    end)
  end)


  describe("stdlib subset", function()
    local present = {
      "_VERSION", "assert", "error", "ipairs", "next", "pairs", "pcall",
      "print", "select", "tonumber", "tostring", "type", "unpack", "xpcall",
      "bit.band", "bit.tohex", "coroutine.wrap", "coroutine.yield",
      "io.type", "jit.os", "jit.version_num", "math.floor", "math.huge",
      "math.random", "os.clock", "os.date", "os.time", "string.format",
      "string.gsub", "string.rep", "table.concat", "table.insert",
      "table.new", "table.clear", "table.nkeys", "table.sort",
    }
    local absent = {
      "load", "loadstring", "loadfile", "dofile", "module", "setfenv",
      "getfenv", "setmetatable", "getmetatable", "rawget", "rawset",
      "rawequal", "collectgarbage", "debug", "package", "newproxy",
      "string.dump", "os.execute", "os.exit", "os.getenv", "os.remove",
      "io.open", "io.popen", "io.write", "math.randomseed", "jit.off",
    }

    for _, name in ipairs(present) do
      it("has " .. name, function()
        local v = run("return " .. name)
        assert.is_not_nil(v)
        local real = assert(loadstring("return " .. name))()
          or require(name)
        assert.equal(real, v)
      end)
    end

    for _, name in ipairs(absent) do
      it("lacks " .. name, function()
        assert.is_nil(run("return " .. name))
      end)
    end

    it("has the same subset in sandbox_lua, without kong and ngx",
       function()
      _G.kong = { configuration = {} }
      local fn = sandbox.sandbox_lua(
        "return string.rep, load, kong, ngx, debug")
      local rep, ld, k, n, dbg = fn()
      assert.equal(string.rep, rep)
      assert.is_nil(ld)
      assert.is_nil(k)
      assert.is_nil(n)
      assert.is_nil(dbg)
    end)
  end)


  describe("read-only library tables", function()
    -- { assignment, message }
    local cases = {
      { "string.rep = nil", "Cannot modify string.rep." },
      { "string.upper = print", "Cannot modify string.upper." },
      { "string.evil = 1", "Cannot modify string.evil." },
      { "math.pi = 3", "Cannot modify math.pi." },
      { "table.insert = nil", "Cannot modify table.insert." },
      { "os.time = nil", "Cannot modify os.time." },
      { "coroutine.wrap = nil", "Cannot modify coroutine.wrap." },
      { "bit.band = nil", "Cannot modify bit.band." },
      { "jit.os = 'x'", "Cannot modify jit.os." },
      { "io.type = nil", "Cannot modify io.type." },
    }
    for _, c in ipairs(cases) do
      it(c[1] .. " raises", function()
        local real_string_rep, real_pi = string.rep, math.pi
        local err = raised(sandbox.sandbox(c[1]))
        assert.equal(c[2] .. " Protected by the sandbox.", err)
        assert.equal(real_string_rep, string.rep)
        assert.equal(real_pi, math.pi)
        assert.is_nil(rawget(string, "evil"))
      end)
    end

    it("applies in sandbox_lua, global writes included", function()
      assert.equal("Cannot modify string.rep. Protected by the sandbox.",
                   raised(sandbox.sandbox_lua("string.rep = nil")))
      assert.equal("Cannot modify _G.x. Protected by the sandbox.",
                   raised(sandbox.sandbox_lua("x = 1")))
      assert.is_nil(rawget(_G, "x"))
    end)

    it("does not leak into the global string (Kong/kong#7133)", function()
      pcall(sandbox.sandbox("string.rep = function() return 'x' end"))
      assert.equal("aa", ("a"):rep(2))
      assert.equal("aa", run("return ('a'):rep(2)"))
    end)
  end)


  describe("global writes", function()
    for _, level in ipairs({ "on", "sandbox" }) do
      it("stay out of _G with untrusted_lua = " .. level, function()
        set_conf({ untrusted_lua = level })
        _G.leak_probe = "original"
        finally(function()
          _G.leak_probe = nil
          _G.new_global = nil
          _G.other = nil
        end)
        local a, b, c = run([[
          leak_probe = "changed"
          new_global = 1
          _G.other = 2
          return leak_probe, new_global, other
        ]])
        assert.same({ "changed", 1, 2 }, { a, b, c })
        assert.equal("original", _G.leak_probe)
        assert.is_nil(rawget(_G, "new_global"))
        assert.is_nil(rawget(_G, "other"))
      end)

      it("are private to a chunk with untrusted_lua = " .. level, function()
        set_conf({ untrusted_lua = level })
        local one = sandbox.sandbox("shared_name = 1 return shared_name")
        local two = sandbox.sandbox("return shared_name")
        assert.equal(1, one())
        assert.is_nil(two())
      end)

      it("go to opts.env with untrusted_lua = " .. level .. " (on: env)",
         function()
        set_conf({ untrusted_lua = level })
        local env = { foo = 0 }
        local fn = sandbox.parse([[
          return function(inc)
            foo = foo + inc
            return foo
          end
        ]], { env = env })
        fn(10)
        fn(20)
        assert.equal(60, fn(30))
        -- 'on' loads in env itself; the sandbox copies env's keys
        assert.equal(level == "on" and 60 or 0, env.foo)
      end)
    end

    it("opts.env keys win over the environment", function()
      local env = { string = "mine", ngx = "fake ngx", extra = 1 }
      assert.same({ "mine", "fake ngx", 1 },
                  { run("return string, ngx, extra", { env = env }) })
    end)
  end)


  describe("untrusted_lua_sandbox_environment", function()
    local modules = {
      "foo.bar",
      "bar",
      "baz.fuzz.answer",
      "fizz.fizz", "fizz.buzz", "fizz.zap",
    }

    before_each(function()
      _G.foo = { bar = { hello = "world", deep = { n = 1 } }, baz = "fuzz" }
      _G.bar = { "baz", "fuzz", { bye = "world" } }
      _G.baz = { foo = _G.foo,
                 fuzz = { question = "everything", answer = 42 } }
      _G.fizz = { fizz = _G.foo, buzz = _G.bar, zap = _G.baz }
      set_conf({
        untrusted_lua = "sandbox",
        untrusted_lua_sandbox_environment = modules,
      })
    end)

    after_each(function()
      _G.foo, _G.bar, _G.baz, _G.fizz = nil, nil, nil, nil
    end)

    -- { expression, expected value }
    local reads = {
      { "foo.bar.hello", "world" },
      { "foo.bar.deep.n", 1 },
      { "bar[1]", "baz" },
      { "bar[3].bye", "world" },
      { "baz.fuzz.answer", 42 },
      { "fizz.fizz.bar.hello", "world" },
      { "fizz.buzz[2]", "fuzz" },
      { "fizz.zap.fuzz.question", "everything" },
      -- not listed: not there
      { "foo.baz", nil },
      { "baz.foo", nil },
      { "baz.fuzz.question", nil },
    }
    for _, c in ipairs(reads) do
      it("reads " .. c[1], function()
        assert.equal(c[2], run("return " .. c[1]))
      end)
    end

    it("shows each listed table whole", function()
      for _, m in ipairs(modules) do
        local real = assert(loadstring("return " .. m))()
        assert.same(real, run("return " .. m))
      end
    end)

    -- { assignment, check on the real table }
    local writes = {
      { "foo.bar.something = 'hello'",
        function() return _G.foo.bar.something == nil end },
      { "foo.bar.deep.n = 2", function() return _G.foo.bar.deep.n == 1 end },
      { "baz.fuzz.hallo = 'hello'",
        function() return _G.baz.fuzz.hallo == nil end },
      { "fizz.fizz.bar.hello = 'x'",
        function() return _G.foo.bar.hello == "world" end },
      { "bar[1] = 'changed'", function() return _G.bar[1] == "baz" end },
    }
    for _, c in ipairs(writes) do
      it(c[1] .. " stays in the view", function()
        local fn = sandbox.sandbox(c[1] .. " return true")
        assert.is_true(fn())
        assert.is_true(c[2]())
      end)
    end

    it("a write is seen by the chunk that made it, not by others",
       function()
      assert.equal(2, run("foo.bar.deep.n = 2 return foo.bar.deep.n"))
      assert.equal(1, run("return foo.bar.deep.n"))
    end)

    it("accepts the list as a comma separated string", function()
      set_conf({ untrusted_lua_sandbox_environment = "foo.baz, bar" })
      assert.equal("fuzz", run("return foo.baz"))
      assert.equal("baz", run("return bar[1]"))
      assert.is_nil(run("return foo.bar"))
    end)

    it("can extend a library table without unlocking it", function()
      set_conf({ untrusted_lua_sandbox_environment = { "string.dump" } })
      assert.equal(string.dump, run("return string.dump"))
      assert.equal(string.rep, run("return string.rep"))
      assert.equal("Cannot modify string.rep. Protected by the sandbox.",
                   raised(sandbox.sandbox("string.rep = nil")))
      assert.is_nil(run("return string.dump",
                        { env = { string = { } } }))
    end)
  end)


  describe("fake require", function()
    local requires = { "foo", "bar", "baz" }

    before_each(function()
      set_conf({ untrusted_lua_sandbox_requires = requires })
    end)

    for _, mod in ipairs(requires) do
      it("can require " .. mod, function()
        local mock = function() end
        local saved = package.loaded[mod]
        package.loaded[mod] = mock
        finally(function()
          package.loaded[mod] = saved
        end)
        assert.equal(mock, run(fmt("return require('%s')", mod)))
      end)
    end

    -- modules that exist but are not listed
    local denied = { "something-else", "cjson", "os", "debug",
                     "kong.tools.sandbox", "ffi" }
    for _, mod in ipairs(denied) do
      it("cannot require " .. mod, function()
        local err = raised(sandbox.sandbox(fmt("return require('%s')", mod)))
        assert.equal(fmt("require '%s' not allowed within sandbox", mod),
                     err)
      end)
    end

    it("allows nothing when the list is empty", function()
      set_conf({})
      assert.equal("require 'foo' not allowed within sandbox",
                   raised(sandbox.sandbox("return require 'foo'")))
    end)

    it("is not the fake one with untrusted_lua = on", function()
      set_conf({ untrusted_lua = "on" })
      assert.equal(require "cjson", run("return require 'cjson'"))
    end)
  end)


  describe("kong", function()
    local real_kong, conf

    before_each(function()
      conf = {
        untrusted_lua = "sandbox",
        plugins = { "bundled", "my-plugin" },
        pg_password = "hunter2",
        pg_ro_password = "ro-secret",
        proxy_server = "http://user:pass@proxy",
        declarative_config_string = "{ secret }",
        cluster_cert_key = "-----BEGIN KEY-----",
        ssl_cert_key = { "key1" },
        pg_user = "kong",
      }
      real_kong = {
        configuration = conf,
        licensing = { license = "secret" },
        request = { get_path = function() return "/p" end },
        cache = {
          cluster_events = { secret = true },
          store = { foo = "val" },
          get = function(self, k) return self.store[k] end,
        },
        core_cache = { cluster_events = { secret = true } },
        db = {
          connector = { config = { password = "x" }, host = "db" },
          routes = "routes dao",
        },
      }
      _G.kong = real_kong
      sandbox.configuration:clear()
    end)

    -- { expression, expected }
    local cases = {
      { "kong.configuration.pg_password", "******" },
      { "kong.configuration.pg_ro_password", "******" },
      { "kong.configuration.proxy_server", "******" },
      { "kong.configuration.declarative_config_string", "******" },
      { "kong.configuration.cluster_cert_key", "******" },
      { "kong.configuration.ssl_cert_key", "******" },
      { "kong.configuration.admin_ssl_cert_key", nil },  -- unset: no mask
      { "kong.configuration.plugins[1]", "bundled" },
      { "#kong.configuration.plugins", 2 },
      { "kong.configuration.pg_user", "kong" },
      { "kong.request.get_path()", "/p" },
      { "kong.cache:get('foo')", "val" },
      { "kong.cache.cluster_events", "nil", tostring },
      { "kong.core_cache.cluster_events", "nil", tostring },
      { "kong.licensing.license", nil },
      { "tostring(kong.licensing)", "nil" },
      { "kong.db.connector.config.password", nil },
      { "kong.db.connector.host", "db" },
      { "kong.db.routes", "routes dao" },
    }
    for _, c in ipairs(cases) do
      it("shows " .. c[1] .. " as " .. tostring(c[2]), function()
        local v = run("return " .. c[1])
        if c[3] then
          v = c[3](v)
        end
        assert.equal(c[2], v)
      end)
    end

    it("is the real kong, read live", function()
      assert.equal(real_kong.request.get_path,
                   run("return kong.request.get_path"))
      local fn = sandbox.sandbox("return kong.late")
      real_kong.late = "added after compile"
      assert.equal("added after compile", fn())
    end)

    it("stays wrapped when opts.env hands the real kong in", function()
      assert.equal("******", run("return kong.configuration.pg_password",
                                 { env = { kong = real_kong } }))
    end)

    it("keeps the real configuration and secrets unchanged", function()
      run([[
        kong.configuration.pg_user = "changed"
        kong.configuration.plugins[1] = "changed"
      ]])
      assert.equal("kong", conf.pg_user)
      assert.equal("bundled", conf.plugins[1])
      assert.equal("hunter2", conf.pg_password)
      assert.equal("secret", real_kong.licensing.license)
      assert.equal(
        "Cannot modify kong.configuration.brand_new. Protected by the sandbox.",
        raised(sandbox.sandbox("kong.configuration.brand_new = 1")))
      assert.equal(
        "Cannot modify kong.licensing.x. Protected by the sandbox.",
        raised(sandbox.sandbox("kong.licensing.x = 1")))
    end)

    it("uses configuration.remove_sensitive() when there is one",
       function()
      conf.remove_sensitive = function()
        return { pg_password = "******", marker = "from remove_sensitive" }
      end
      assert.same({ "******", "from remove_sensitive" },
        { run("return kong.configuration.pg_password, " ..
              "kong.configuration.marker") })
    end)

    it("shows vault references instead of resolved secrets", function()
      conf.pg_user = "resolved-user"
      conf["$refs"] = { pg_user = "{vault://env/user}",
                        pg_password = "{vault://env/pw}" }
      assert.same({ "{vault://env/user}", "******" },
        { run("return kong.configuration.pg_user, " ..
              "kong.configuration.pg_password") })
      assert.is_nil(run("return kong.configuration['$refs']"))
    end)

    it("redacts a proxy configuration read through __index", function()
      local store = { pg_password = "hunter2", log_level = "debug",
                      untrusted_lua = "sandbox" }
      real_kong.configuration = setmetatable({}, {
        __index = function(_, k) return store[k] end,
      })
      assert.same({ "******", "debug" },
        { run("return kong.configuration.pg_password, " ..
              "kong.configuration.log_level") })
    end)

    it("is nil when there is no kong global", function()
      _G.kong = nil
      assert.is_nil(run("return kong"))
    end)

    it("is untouched with untrusted_lua = on", function()
      conf.untrusted_lua = "on"
      sandbox.configuration:clear()
      assert.equal("hunter2", run("return kong.configuration.pg_password"))
    end)
  end)


  describe("ngx", function()
    it("is the full global ngx", function()
      local fake_ngx = { timer = { at = function() end }, var = {} }
      _G.ngx = fake_ngx
      finally(function()
        _G.ngx = nil
      end)
      assert.equal(fake_ngx, run("return ngx"))
      assert.equal(fake_ngx.timer.at, run("return ngx.timer.at"))
    end)
  end)


  describe("compiled function", function()
    it("passes arguments and results through", function()
      assert.same({ 3, "x", nil, 4 },
                  { run("local a, b = ... return a + b, 'x', nil, 4", nil,
                        1, 2) })
    end)

    it("re-raises runtime errors as they are", function()
      local err = raised(sandbox.sandbox("error('boom')"))
      assert.equal([[[string "error('boom')"]:1: boom]], err)
      local obj = {}
      _G.kong = { configuration = {} }
      err = raised(sandbox.sandbox("error(...)"), obj)
      assert.equal(obj, err)
    end)

    it("can yield (kong.response.exit in access)", function()
      local fn = sandbox.sandbox("coroutine.yield('exit') return 'resumed'")
      local co = coroutine.create(fn)
      assert.same({ true, "exit" }, { coroutine.resume(co) })
      assert.same({ true, "resumed" }, { coroutine.resume(co) })
    end)
  end)


  describe("validate_safe", function()
    for _, level in ipairs({ "on", "sandbox" }) do
      it("does not run the code (#5110), untrusted_lua = " .. level,
         function()
        set_conf({ untrusted_lua = level })
        local calls = 0
        local env = { do_it = function() calls = calls + 1 end }
        assert.is_true(sandbox.validate_safe("do_it()", { env = env }))
        assert.equal(0, calls)
        -- the control group
        sandbox.sandbox("do_it()", { env = env })()
        assert.equal(1, calls)
      end)
    end

    it("reports syntax errors", function()
      local ok, err = sandbox.validate_safe("print(")
      assert.is_false(ok)
      assert.equal([[Error parsing function: [string "print("]:1: ]] ..
                   [[unexpected symbol near '<eof>']], err)
    end)
  end)


  describe("validate, validate_function, parse", function()
    -- { code, validate ok, error part }
    local cases = {
      { "return function() end", true },
      { "here come the warm jets", false, "Error parsing function" },
      { "local foo = dontexist()", false,
        "attempt to call global 'dontexist'" },
      { "return 42", false,
        "Bad return value from function, expected function type, got number" },
      { "x = 1", false,
        "Bad return value from function, expected function type, got nil" },
    }
    for _, level in ipairs({ "on", "sandbox" }) do
      for _, c in ipairs(cases) do
        it(fmt("%s: %q", level, c[1]), function()
          set_conf({ untrusted_lua = level })
          local ok, err = sandbox.validate(c[1])
          local fn, ferr = sandbox.validate_function(c[1])
          local perr = raised(sandbox.parse, c[1])
          if c[2] then
            assert.is_true(ok)
            assert.is_function(fn)
            assert.is_nil(perr)
          else
            assert.is_false(ok)
            assert.matches(c[3], err, nil, true)
            assert.is_false(fn)
            assert.equal(err, ferr)
            assert.matches(c[3], perr, nil, true)
          end
        end)
      end
    end

    it("parse returns the function the code returns", function()
      local fn = sandbox.parse([[
        local n = 0
        return function(inc) n = n + inc return n end
      ]])
      assert.equal(2, fn(2))
      assert.equal(5, fn(3))
    end)
  end)
end)
