-- The command line: version, check, config parse, start (twice, port in
-- use, bad kong.yml), health, stop, quit, restart and KONG_* / SLUICE_*
-- environment overrides, against the real binary.

local helpers = require "spec.helpers"
local util = require "spec.internal.util"
local socket = require "socket"


local FIXTURES = helpers.ROOT .. "/spec/fixtures/declarative"
local q = util.quote


local GOOD_YML = {
  _format_version = "3.0",
  services = {
    { name = "svc", url = "http://127.0.0.1:1",
      routes = { { name = "r", paths = { "/" } } } },
  },
}


-- A fresh gateway description: own prefix and ports.
local count = 0
local function new_conf(extra)
  count = count + 1
  local conf = {
    prefix = helpers.RUN_DIR .. "/cli-" .. count,
    proxy_listen = "127.0.0.1:" .. helpers.get_available_port(),
    admin_listen = "127.0.0.1:" .. helpers.get_available_port(),
    worker_processes = 1,
    log_level = "debug",
    declarative_config = GOOD_YML,
  }
  for k, v in pairs(extra or {}) do
    conf[k] = v
  end
  return conf
end


local function port_of(listen)
  return tonumber(listen:match(":(%d+)"))
end


-- Gateways started by this file with `sluice start` directly: stopped in
-- after_each whatever happened.
local started = {}


local function cli_start(conf, env)
  local path = helpers.write_conf(conf)
  local ok, stdout, stderr, code = helpers.kong_exec(
    "start -c " .. q(path) .. " -p " .. q(conf.prefix), env, 20)
  started[#started + 1] = conf.prefix
  local pid = helpers.get_pid(conf.prefix)
  if pid and helpers.pid_alive(pid) then
    util.track(pid)
  end
  return ok, stdout, stderr, code, path
end


local function cleanup()
  for _, prefix in ipairs(started) do
    local pid = helpers.get_pid(prefix)
    if pid and helpers.pid_alive(pid) then
      helpers.kong_exec("stop -p " .. q(prefix), nil, 15)
      if not util.wait_pid_gone(pid, 10) then
        util.terminate(pid, 2)
      end
      util.untrack(pid)
    end
  end
  started = {}
end


local function get_status(port, path)
  local ok, client = pcall(helpers.http_client, "127.0.0.1", port, 3000)
  if not ok then
    return nil, client
  end
  local res, err = client:get(path or "/x")
  if not res then
    client:close()
    return nil, err
  end
  res:read_body()
  client:close()
  return res.status
end


describe("CLI", function()

  after_each(cleanup)

  describe("version", function()
    it("prints the version", function()
      local ok, stdout, stderr, code = helpers.kong_exec("version")
      assert.is_true(ok, stderr)
      assert.equal(0, code)
      assert.matches("^Sluice %d+%.%d+%.%d+", stdout)
    end)

    it("-a adds LuaJIT, libevent, OpenSSL and PCRE2", function()
      local ok, stdout, stderr = helpers.kong_exec("version -a")
      assert.is_true(ok, stderr)
      assert.matches("^Sluice %d+%.%d+%.%d+", stdout)
      assert.matches("LuaJIT 2%.%d", stdout)
      assert.matches("libevent %d+%.%d+", stdout)
      assert.matches("OpenSSL %d", stdout)
      assert.matches("PCRE2 %d+", stdout)
    end)

    it("an unknown command exits non-zero with the usage", function()
      local ok, stdout, stderr, code = helpers.kong_exec("no-such-command")
      assert.is_false(ok)
      assert.is_not.equal(0, code)
      assert.matches("unknown command", stdout .. stderr, 1, true)
      assert.matches("Usage", stdout .. stderr, 1, true)
    end)
  end)


  describe("check", function()
    it("accepts a good conf", function()
      local path = helpers.write_conf(new_conf())
      local ok, stdout, stderr, code = helpers.kong_exec("check " .. q(path))
      assert.is_true(ok, stderr)
      assert.equal(0, code)
      assert.matches("configuration at " .. path .. " is valid", stdout, 1,
                     true)
    end)

    it("a bad value: exit 1, file:line and property", function()
      local path = helpers.RUN_DIR .. "/bad-value.conf"
      helpers.file.write(path, "# comment\nlog_level = debug\n"
                               .. "worker_processes = banana\n")
      local ok, stdout, stderr, code = helpers.kong_exec("check " .. q(path))
      assert.is_false(ok)
      assert.equal(1, code)
      local out = stdout .. stderr
      assert.matches(path .. ":3", out, 1, true)
      assert.matches("worker_processes", out, 1, true)
      assert.matches("banana", out, 1, true)
    end)

    it("a bad listen value names line and property", function()
      local path = helpers.RUN_DIR .. "/bad-listen.conf"
      helpers.file.write(path, "proxy_listen = 127.0.0.1:99999\n")
      local ok, stdout, stderr, code = helpers.kong_exec("check " .. q(path))
      assert.is_false(ok)
      assert.equal(1, code)
      assert.matches(path .. ":1", stdout .. stderr, 1, true)
      assert.matches("proxy_listen", stdout .. stderr, 1, true)
    end)

    it("a line without '=' is an error with file:line", function()
      local path = helpers.RUN_DIR .. "/bad-syntax.conf"
      helpers.file.write(path, "log_level = info\nthis is not a property\n")
      local ok, stdout, stderr, code = helpers.kong_exec("check " .. q(path))
      assert.is_false(ok)
      assert.equal(1, code)
      assert.matches(path .. ":2", stdout .. stderr, 1, true)
    end)

    it("a missing file: exit 1 naming it", function()
      local path = helpers.RUN_DIR .. "/does-not-exist.conf"
      local ok, stdout, stderr, code = helpers.kong_exec("check " .. q(path))
      assert.is_false(ok)
      assert.equal(1, code)
      assert.matches(path, stdout .. stderr, 1, true)
    end)
  end)


  describe("config parse", function()
    it("accepts a good kong.yml", function()
      local ok, stdout, stderr, code = helpers.kong_exec(
        "config parse " .. q(FIXTURES .. "/bundled-plugins.yml"))
      assert.is_true(ok, stderr)
      assert.equal(0, code)
      assert.matches("parse successful", stdout, 1, true)
      assert.matches("2 plugins", stdout, 1, true)
    end)

    it("a plugin not in `plugins`: exit 1 naming it, as Kong", function()
      local ok, _, stderr, code = helpers.kong_exec(
        "config parse " .. q(FIXTURES .. "/nested.yml"))
      assert.is_false(ok)
      assert.equal(1, code)
      assert.matches("plugin 'key-auth' not enabled; add it to the 'plugins' "
                     .. "configuration property", stderr, 1, true)
    end)

    it("pre-function code that does not compile: exit 1 naming the phase",
       function()
      local ok, _, stderr, code = helpers.kong_exec(
        "config parse " .. q(FIXTURES .. "/bad-plugin-code.yml"))
      assert.is_false(ok)
      assert.equal(1, code)
      assert.matches("config.access[1]", stderr, 1, true)
      assert.matches("error parsing pre-function", stderr, 1, true)
    end)

    it("a bad route: exit 1 naming file, entity and field", function()
      local file = FIXTURES .. "/bad-routes.yml"
      local ok, stdout, stderr, code = helpers.kong_exec("config parse "
                                                         .. q(file))
      assert.is_false(ok)
      assert.equal(1, code)
      local out = stdout .. stderr
      assert.matches(file, out, 1, true)
      assert.matches("routes", out, 1, true)
      assert.matches("paths", out, 1, true)
    end)

    it("a bad service field: exit 1 naming file, entity and field",
       function()
      local file = helpers.make_yaml_file(helpers.unindent([[
        _format_version: "3.0"
        services:
          - name: svc-a
            url: http://127.0.0.1:15555
            retries: -3
      ]]))
      local ok, stdout, stderr, code = helpers.kong_exec("config parse "
                                                         .. q(file))
      assert.is_false(ok)
      assert.equal(1, code)
      local out = stdout .. stderr
      assert.matches(file, out, 1, true)
      assert.matches("svc-a", out, 1, true)
      assert.matches("retries", out, 1, true)
    end)

    it("a YAML syntax error: exit 1 naming the file", function()
      local file = FIXTURES .. "/bad-syntax.yml"
      local ok, stdout, stderr, code = helpers.kong_exec("config parse "
                                                         .. q(file))
      assert.is_false(ok)
      assert.equal(1, code)
      assert.matches(file, stdout .. stderr, 1, true)
    end)
  end)


  describe("start", function()
    it("a second start on the same prefix fails: already running",
       function()
      local conf = new_conf()
      local ok, _, stderr, _, path = cli_start(conf)
      assert.is_true(ok, stderr)
      local pid = assert(helpers.get_pid(conf.prefix))
      assert.equal(502, get_status(port_of(conf.proxy_listen)))

      local ok2, stdout2, stderr2, code2 = helpers.kong_exec(
        "start -c " .. q(path) .. " -p " .. q(conf.prefix), nil, 20)
      assert.is_false(ok2)
      assert.equal(1, code2)
      assert.matches("already running", stdout2 .. stderr2, 1, true)
      -- the first one is untouched
      assert.equal(pid, helpers.get_pid(conf.prefix))
      assert.is_true(helpers.pid_alive(pid))
      assert.equal(502, get_status(port_of(conf.proxy_listen)))
    end)

    it("a port already in use: exit 1 with a clear message", function()
      local port = helpers.get_available_port()
      local blocker = assert(socket.bind("127.0.0.1", port))
      local conf = new_conf({ proxy_listen = "127.0.0.1:" .. port })
      local ok, stdout, stderr, code = cli_start(conf)
      blocker:close()
      assert.is_false(ok)
      assert.equal(1, code)
      local out = stdout .. stderr
      assert.matches("127.0.0.1:" .. port, out, 1, true)
      assert.matches("in use", out, 1, true)
      local pid = helpers.get_pid(conf.prefix)
      assert.is_true(pid == nil or not helpers.pid_alive(pid),
                     "a process was left running")
      -- nor anything on the admin port
      assert.is_falsy(util.port_open("127.0.0.1",
                                     port_of(conf.admin_listen), 0.5))
    end)

    it("a bad kong.yml: exit 1 with the loader's message, nothing running",
       function()
      local file = FIXTURES .. "/bad-routes.yml"
      local conf = new_conf({ declarative_config = file })
      local ok, stdout, stderr, code = cli_start(conf)
      assert.is_false(ok)
      assert.equal(1, code)
      local out = stdout .. stderr
      assert.matches(file, out, 1, true)
      assert.matches("routes", out, 1, true)
      assert.matches("paths", out, 1, true)
      local pid = helpers.get_pid(conf.prefix)
      assert.is_true(pid == nil or not helpers.pid_alive(pid))
      assert.is_falsy(util.port_open("127.0.0.1",
                                     port_of(conf.proxy_listen), 0.5))
      local hok, _, _, hcode = helpers.kong_exec("health -p "
                                                 .. q(conf.prefix))
      assert.is_false(hok)
      assert.is_not.equal(0, hcode)
    end)

    it("a bad kong.conf: exit 1 naming file, line and property", function()
      local conf = new_conf()
      local path = helpers.write_conf(conf)
      local text = helpers.file.read(path)
      helpers.file.write(path, text .. "keepalive_timeout = forever\n")
      local nlines = select(2, text:gsub("\n", "")) + 1
      local ok, stdout, stderr, code = helpers.kong_exec(
        "start -c " .. q(path) .. " -p " .. q(conf.prefix), nil, 20)
      started[#started + 1] = conf.prefix
      assert.is_false(ok)
      assert.equal(1, code)
      local out = stdout .. stderr
      assert.matches(path .. ":" .. nlines, out, 1, true)
      assert.matches("keepalive_timeout", out, 1, true)
      assert.is_falsy(util.port_open("127.0.0.1",
                                     port_of(conf.proxy_listen), 0.5))
    end)
  end)


  describe("health, stop, quit, restart", function()
    it("health: exit 0 when running, non-zero when not", function()
      local conf = new_conf()
      local ok, stdout, stderr, code = helpers.kong_exec("health -p "
                                                         .. q(conf.prefix))
      assert.is_false(ok)
      assert.is_not.equal(0, code)
      assert.matches("not running", stdout .. stderr, 1, true)

      ok, _, stderr = cli_start(conf)
      assert.is_true(ok, stderr)
      ok, stdout, stderr, code = helpers.kong_exec("health -p "
                                                   .. q(conf.prefix))
      assert.is_true(ok, stderr)
      assert.equal(0, code)
      assert.matches("Sluice is healthy at " .. conf.prefix, stdout, 1, true)
    end)

    it("stop: exit 0, the master is gone and the port closed", function()
      local conf = new_conf()
      local ok, _, stderr = cli_start(conf)
      assert.is_true(ok, stderr)
      local pid = assert(helpers.get_pid(conf.prefix))
      local t0 = helpers.now()
      local sok, _, serr, scode = helpers.kong_exec("stop -p "
                                                    .. q(conf.prefix))
      assert.is_true(sok, serr)
      assert.equal(0, scode)
      assert.is_true(util.wait_pid_gone(pid, 5))
      assert.truthy(helpers.now() - t0 < 3, "stop took "
                                           .. (helpers.now() - t0) .. " s")
      assert.is_falsy(util.port_open("127.0.0.1",
                                     port_of(conf.proxy_listen), 0.5))
      local hok = helpers.kong_exec("health -p " .. q(conf.prefix))
      assert.is_false(hok)
      -- stopping again: nothing to stop
      local ok2, _, _, code2 = helpers.kong_exec("stop -p " .. q(conf.prefix))
      assert.is_false(ok2)
      assert.equal(1, code2)
    end)

    it("quit: exit 0 and the master is gone", function()
      local conf = new_conf()
      local ok, _, stderr = cli_start(conf)
      assert.is_true(ok, stderr)
      local pid = assert(helpers.get_pid(conf.prefix))
      local qok, _, qerr, qcode = helpers.kong_exec("quit -p "
                                                    .. q(conf.prefix))
      assert.is_true(qok, qerr)
      assert.equal(0, qcode)
      assert.is_true(util.wait_pid_gone(pid, 5))
      assert.is_falsy(util.port_open("127.0.0.1",
                                     port_of(conf.proxy_listen), 0.5))
    end)

    it("restart: a new master that serves", function()
      local conf = new_conf()
      local ok, _, stderr, _, path = cli_start(conf)
      assert.is_true(ok, stderr)
      local pid = assert(helpers.get_pid(conf.prefix))
      local rok, _, rerr, rcode = helpers.kong_exec(
        "restart -c " .. q(path) .. " -p " .. q(conf.prefix), nil, 25)
      assert.is_true(rok, rerr)
      assert.equal(0, rcode)
      assert.is_true(util.wait_pid_gone(pid, 5))
      local new_pid = assert(helpers.get_pid(conf.prefix))
      assert.is_not.equal(pid, new_pid)
      assert.is_true(helpers.pid_alive(new_pid))
      util.track(new_pid)
      assert.equal(502, get_status(port_of(conf.proxy_listen)))
    end)

    it("reload/quit/stop on a prefix where nothing runs exit 1", function()
      local conf = new_conf()
      for _, cmd in ipairs({ "stop", "quit", "reload" }) do
        local ok, stdout, stderr, code = helpers.kong_exec(
          cmd .. " -p " .. q(conf.prefix))
        assert.is_false(ok, cmd)
        assert.equal(1, code, cmd)
        assert.matches("not running", stdout .. stderr, 1, true)
      end
    end)
  end)


  describe("environment overrides", function()
    it("KONG_PROXY_LISTEN overrides proxy_listen", function()
      local conf = new_conf()
      local env_port = helpers.get_available_port()
      local ok, _, stderr = cli_start(conf, {
        KONG_PROXY_LISTEN = "127.0.0.1:" .. env_port,
      })
      assert.is_true(ok, stderr)
      assert.equal(502, get_status(env_port))
      assert.is_falsy(util.port_open("127.0.0.1",
                                     port_of(conf.proxy_listen), 0.5))
    end)

    it("SLUICE_PROXY_LISTEN overrides proxy_listen too", function()
      local conf = new_conf()
      local env_port = helpers.get_available_port()
      local ok, _, stderr = cli_start(conf, {
        SLUICE_PROXY_LISTEN = "127.0.0.1:" .. env_port,
      })
      assert.is_true(ok, stderr)
      assert.equal(502, get_status(env_port))
      assert.is_falsy(util.port_open("127.0.0.1",
                                     port_of(conf.proxy_listen), 0.5))
    end)

    it("a bad value from the environment is an error naming it",
       function()
      local path = helpers.write_conf(new_conf())
      local ok, stdout, stderr, code = helpers.kong_exec(
        "check " .. q(path), { KONG_WORKER_PROCESSES = "banana" })
      assert.is_false(ok)
      assert.equal(1, code)
      assert.matches("KONG_WORKER_PROCESSES", stdout .. stderr, 1, true)
    end)
  end)
end)
