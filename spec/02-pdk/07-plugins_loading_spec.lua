-- How plugins are loaded and run: PRIORITY order with Kong's tie-break,
-- Kong's 8-level config precedence, no_consumer/no_route handlers,
-- enabled=false, protocols, a plugin error in access, and load errors with
-- Kong's messages from `sluice start` and `sluice config parse`.

local helpers = require "spec.helpers"
local cjson = require "cjson.safe"
local probe = require "spec.fixtures.custom_plugins.kong.plugins.pdk-probe.client"


local PATH = probe.PACKAGE_PATH


local function lines_of(path)
  local out = {}
  local f = io.open(path, "r")
  if not f then
    return out
  end
  for line in f:lines() do
    out[#out + 1] = line
  end
  f:close()
  return out
end


local function as_list(v)
  if type(v) == "table" then
    return v
  end
  return { v }
end


describe("plugins: ordering and errors", function()
  local mock, client

  lazy_setup(function()
    mock = helpers.start_mock_upstream()
    assert(helpers.start_kong({
      plugins = "bundled,order-a,order-b,order-c,raise-error",
      lua_package_path = PATH,
      declarative_config = {
        _format_version = "3.0",
        services = {
          { name = "s", url = mock.url,
            routes = {
              { name = "order", paths = { "/order" } },
              { name = "boom", paths = { "/boom" },
                plugins = { { name = "raise-error",
                              config = { message = "kaboom" } } } },
              { name = "boom-hf", paths = { "/boom-hf" },
                plugins = { { name = "raise-error",
                              config = { phase = "header_filter",
                                         message = "hf-kaboom" } } } },
            } },
        },
        plugins = {
          { name = "order-a", config = { tag = "ga" } },
          { name = "order-b", config = { tag = "gb" } },
          { name = "order-c", config = { tag = "gc" } },
        },
      },
    }))
  end)

  lazy_teardown(function()
    helpers.stop_kong()
    if mock then
      mock.stop()
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


  it("runs every phase by PRIORITY, ties by name descending", function()
    helpers.clean_logfile()
    local res = client:get("/order")
    local e = cjson.decode(assert.res_status(200, res))
    -- order-c 600, then order-b and order-a (500: "order-b" > "order-a")
    local want = { "order-c", "order-b", "order-a" }
    assert.same(want, as_list(e.headers["x-order-rewrite"]))
    assert.same(want, as_list(e.headers["x-order-access"]))
    assert.same(want, as_list(res.headers["X-Order-Resp-Rewrite"]))
    assert.same(want, as_list(res.headers["X-Order-Resp-Access"]))
    assert.same(want, as_list(res.headers["X-Order-Hf"]))
    assert.logfile().has.line("order-trace order-a log ga 200", true, 5)
    local seen = {}
    for _, line in ipairs(lines_of(helpers.error_log())) do
      local name, phase = line:match("order%-trace (order%-%a) (%w+_?%w*)")
      if name then
        seen[phase] = seen[phase] or {}
        table.insert(seen[phase], name)
      end
    end
    assert.same(want, seen.body_filter)
    assert.same(want, seen.log)
  end)

  it("a plugin error in access: Kong's 500, a log line naming the plugin, later plugins' log still runs", function()
    helpers.clean_logfile()
    local res = client:get("/boom", { headers = { Accept = "application/json" } })
    local body = assert.res_status(500, res)
    local j = cjson.decode(body)
    assert.equal("An unexpected error occurred", j.message)
    assert.is_string(j.request_id)
    assert.logfile().has.line("%[error%].*%[raise%-error%].*kaboom", false, 5)
    -- raise-error is PRIORITY 800: order-c (600) and the others come after it
    assert.is_nil(res.headers["X-Order-Resp-Access"])
    assert.logfile().has.line("order-trace order-a log ga 500", true, 5)
    assert.logfile().has.line("order-trace order-c log gc 500", true, 5)
  end)

  it("the worker keeps serving after plugin errors", function()
    for _ = 1, 3 do
      assert.res_status(500, client:get("/boom"))
      assert.res_status(200, client:get("/order"))
    end
  end)

  it("an error in header_filter is logged with the plugin and the others still run", function()
    helpers.clean_logfile()
    local res = client:get("/boom-hf")
    assert.is_true(res.status == 200 or res.status == 500)
    assert.logfile().has.line("%[error%].*raise%-error.*hf%-kaboom", false, 5)
    assert.logfile().has.line("order-trace order-a log ga", true, 5)
    local c2 = helpers.proxy_client()
    assert.res_status(200, c2:get("/order"))
    c2:close()
  end)
end)


describe("plugins: configuration precedence", function()
  local mock, client

  local ROUTES = { "r1", "r2", "r3", "r4" }

  lazy_setup(function()
    mock = helpers.start_mock_upstream()
    local function route(name)
      return { name = name, paths = { "/" .. name } }
    end
    assert(helpers.start_kong({
      plugins = "bundled,fake-auth,order-a,order-b,order-c,order-nc,order-nr",
      lua_package_path = PATH,
      declarative_config = {
        _format_version = "3.0",
        consumers = {
          { username = "alice" }, { username = "bob" },
          { username = "carol" }, { username = "dave" },
        },
        services = {
          { name = "s1", url = mock.url, routes = { route("r1"), route("r2") } },
          { name = "s2", url = mock.url, routes = { route("r3") } },
          { name = "s3", url = mock.url, routes = { route("r4") } },
        },
        plugins = {
          { name = "fake-auth", config = { anonymous_ok = true } },
          -- Kong's 8 levels, first hit wins
          { name = "order-a", route = "r1", service = "s1",
            consumer = "alice", config = { tag = "route+service+consumer" } },
          { name = "order-a", route = "r1", consumer = "bob",
            config = { tag = "route+consumer" } },
          { name = "order-a", service = "s1", consumer = "carol",
            config = { tag = "service+consumer" } },
          { name = "order-a", route = "r1", service = "s1",
            config = { tag = "route+service" } },
          { name = "order-a", consumer = "dave", config = { tag = "consumer" } },
          { name = "order-a", route = "r2", config = { tag = "route" } },
          { name = "order-a", service = "s2", config = { tag = "service" } },
          { name = "order-a", config = { tag = "global" } },
          -- no_consumer: the consumer-scoped instance is ignored
          { name = "order-nc", config = { tag = "global" } },
          { name = "order-nc", consumer = "alice", config = { tag = "consumer" } },
          -- no_route: the route-scoped instance is ignored
          { name = "order-nr", service = "s1", config = { tag = "service" } },
          { name = "order-nr", route = "r1", config = { tag = "route" } },
          -- enabled = false and protocols
          { name = "order-b", route = "r1", enabled = false,
            config = { tag = "disabled" } },
          { name = "order-b", route = "r2", config = { tag = "on" } },
          -- Kong keeps an instance when one of its protocols belongs to the
          -- request's subsystem (http, https, grpc, grpcs -> "http")
          { name = "order-c", route = "r1", protocols = { "tcp", "tls" },
            config = { tag = "stream-only" } },
          { name = "order-c", route = "r2", protocols = { "https" },
            config = { tag = "https-only" } },
          { name = "order-c", route = "r3", protocols = { "http" },
            config = { tag = "http" } },
          { name = "order-c", route = "r4", protocols = { "grpc", "grpcs" },
            config = { tag = "grpc" } },
        },
      },
    }))
  end)

  lazy_teardown(function()
    helpers.stop_kong()
    if mock then
      mock.stop()
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


  local function tag(route, consumer, plugin)
    local res = client:get("/" .. route, { headers = {
                             ["X-Consumer"] = consumer } })
    assert.res_status(200, res)
    return res.headers["X-Tag-" .. (plugin or "order-a")]
  end


  local CASES = {
    { "r1", "alice", "route+service+consumer" },
    { "r1", "bob", "route+consumer" },
    { "r1", "carol", "service+consumer" },
    { "r1", nil, "route+service" },
    { "r1", "dave", "route+service" },   -- level 4 beats level 5
    { "r3", "dave", "consumer" },        -- level 5 beats level 7
    { "r2", nil, "route" },
    { "r2", "dave", "consumer" },        -- level 5 beats level 6
    { "r3", nil, "service" },
    { "r4", nil, "global" },
    { "r4", "alice", "global" },
  }
  for _, c in ipairs(CASES) do
    it(c[1] .. " with consumer " .. tostring(c[2]) .. " -> " .. c[3],
       function()
      assert.equal(c[3], tag(c[1], c[2]))
    end)
  end

  it("no_consumer handlers ignore consumer-scoped instances", function()
    assert.equal("global", tag("r4", "alice", "order-nc"))
    assert.equal("global", tag("r4", nil, "order-nc"))
  end)

  it("no_route handlers ignore route-scoped instances", function()
    assert.equal("service", tag("r1", nil, "order-nr"))
    assert.equal("service", tag("r2", nil, "order-nr"))
    assert.is_nil(tag("r3", nil, "order-nr"))
  end)

  it("enabled = false instances do not run", function()
    assert.is_nil(tag("r1", nil, "order-b"))
    assert.equal("on", tag("r2", nil, "order-b"))
  end)

  it("instances for another subsystem (tcp, tls) do not run", function()
    assert.is_nil(tag("r1", nil, "order-c"))
    assert.equal("http", tag("r3", nil, "order-c"))
  end)

  it("protocols are matched by subsystem: https runs on http too", function()
    assert.equal("https-only", tag("r2", nil, "order-c"))
  end)

  it("protocols are matched by subsystem: grpc/grpcs belong to http", function()
    assert.equal("grpc", tag("r4", nil, "order-c"))
  end)

  local _ = ROUTES
end)


describe("plugins: load errors", function()
  local function write_conf(plugins, extra)
    local conf = {
      prefix = helpers.test_conf.prefix .. "-loaderr",
      proxy_listen = "127.0.0.1:" .. helpers.get_available_port(),
      admin_listen = "127.0.0.1:" .. helpers.get_available_port(),
      worker_processes = 1,
      plugins = plugins,
      lua_package_path = PATH,
    }
    for k, v in pairs(extra or {}) do
      conf[k] = v
    end
    return helpers.write_conf(conf), conf.prefix
  end

  local function start(plugins, extra)
    local conf, prefix = write_conf(plugins, extra)
    os.execute("mkdir -p '" .. prefix .. "/logs' '" .. prefix .. "/pids'")
    local ok, stdout, stderr, code = helpers.kong_exec("start -c '" .. conf
                                                       .. "' -p '" .. prefix
                                                       .. "'")
    if ok then
      helpers.kong_exec("stop -p '" .. prefix .. "'")
    end
    return ok, (stderr or "") .. (stdout or ""), code
  end

  local function parse(yml, plugins)
    local conf = write_conf(plugins)
    local path = helpers.make_yaml_file(yml)
    local ok, stdout, stderr, code = helpers.kong_exec("config parse '" .. path
                                                       .. "' -c '" .. conf
                                                       .. "'")
    return ok, (stderr or "") .. (stdout or ""), code
  end

  it("a PRIORITY that is not an integer", function()
    local ok, out, code = start("bundled,bad-priority")
    assert.falsy(ok)
    assert.not_equal(0, code)
    assert.matches('Plugin "bad-priority" cannot be loaded because its '
                   .. 'PRIORITY field is not a valid integer number, got: '
                   .. '"high".', out, 1, true)
  end)

  it("a VERSION that is not x.y.z", function()
    local ok, out, code = start("bundled,bad-version")
    assert.falsy(ok)
    assert.not_equal(0, code)
    assert.matches('Plugin "bad-version" cannot be loaded because its '
                   .. 'VERSION field does not follow the "x.y.z" format',
                   out, 1, true)
  end)

  it("a plugin that is not installed", function()
    local ok, out, code = start("bundled,not-a-real-plugin")
    assert.falsy(ok)
    assert.not_equal(0, code)
    assert.matches("not-a-real-plugin plugin is enabled but not installed",
                   out, 1, true)
  end)

  it("the same errors from `config parse`", function()
    local ok, out, code = parse({ _format_version = "3.0" },
                                "bundled,bad-priority")
    assert.falsy(ok)
    assert.not_equal(0, code)
    assert.matches('Plugin "bad-priority" cannot be loaded', out, 1, true)
  end)

  it("a kong.yml plugin that `plugins` does not enable", function()
    local yml = { _format_version = "3.0",
                  plugins = { { name = "order-a" } } }
    local ok, out, code = parse(yml, "bundled")
    assert.falsy(ok)
    assert.not_equal(0, code)
    assert.matches("plugin 'order-a' not enabled; add it to the 'plugins' "
                   .. "configuration property", out, 1, true)
    -- and `start` refuses it too
    local path = helpers.make_yaml_file(yml)
    local sok, sout = start("bundled", { declarative_config = path })
    assert.falsy(sok)
    assert.matches("plugin 'order-a' not enabled; add it to the 'plugins' "
                   .. "configuration property", sout, 1, true)
  end)

  it("an invalid plugin config is a schema violation", function()
    local yml = { _format_version = "3.0",
                  plugins = { { name = "order-a", config = { tag = 5,
                                                             nope = 1 } } } }
    local ok, out, code = parse(yml, "bundled,order-a")
    assert.falsy(ok)
    assert.not_equal(0, code)
    assert.matches("config.tag: expected a string", out, 1, true)
    assert.matches("config.nope: unknown field", out, 1, true)
  end)

  it("a valid file with the plugin enabled parses", function()
    local yml = { _format_version = "3.0",
                  plugins = { { name = "order-a", config = { tag = "x" } } } }
    local ok, out = parse(yml, "bundled,order-a")
    assert.truthy(ok, out)
  end)
end)
