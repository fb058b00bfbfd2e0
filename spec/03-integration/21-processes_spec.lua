-- The process model: master + worker_processes workers, a killed worker is
-- replaced, reload (CLI and raw SIGHUP) with good and broken kong.yml,
-- graceful quit with a request in flight, and a fast stop.

local helpers = require "spec.helpers"
local util = require "spec.internal.util"
local cjson = require "cjson.safe"


local q = util.quote


local children = util.children


local function set_of(list)
  local s = {}
  for _, v in ipairs(list) do
    s[v] = true
  end
  return s
end


local function status_of(path, timeout)
  local ok, client = pcall(helpers.proxy_client, timeout or 3000)
  if not ok then
    return nil, client
  end
  local res, err = client:get(path)
  if not res then
    client:close()
    return nil, err
  end
  local body = res:read_body()
  client:close()
  return res.status, body
end


local function yml(routes)
  local lines = { '_format_version: "3.0"', "services:" }
  lines[#lines + 1] = "  - name: echo"
  lines[#lines + 1] = "    url: " .. helpers.mock_upstream_url
  lines[#lines + 1] = "    routes:"
  for _, r in ipairs(routes) do
    lines[#lines + 1] = "      - name: " .. r.name
    lines[#lines + 1] = '        paths: ["' .. r.path .. '"]'
  end
  return table.concat(lines, "\n") .. "\n"
end


local BROKEN_YML = [[
_format_version: "3.0"
services:
  - name: echo
    url: http://127.0.0.1:15555
    routes:
      - name: broken-route
        paths: ["no-leading-slash"]
]]


describe("processes", function()
  local mock
  local yml_path, conf_path, conf

  lazy_setup(function()
    mock = helpers.start_mock_upstream()
  end)

  lazy_teardown(function()
    helpers.stop_kong()
    if mock then
      mock.stop()
    end
  end)

  before_each(function()
    yml_path = helpers.RUN_DIR .. "/procs-kong.yml"
    helpers.file.write(yml_path, yml({ { name = "one", path = "/one" } }))
    conf = {
      worker_processes = 2,
      declarative_config = yml_path,
    }
    assert(helpers.start_kong(conf))
    -- The conf reload will use: the same as start_kong's.
    local merged = {}
    for k, v in pairs(helpers.test_conf) do
      merged[k] = v
    end
    for k, v in pairs(conf) do
      merged[k] = v
    end
    conf_path = helpers.write_conf(merged)
  end)

  after_each(function()
    helpers.stop_kong()
  end)


  it("worker_processes = 2 starts 2 workers, children of the master",
     function()
    local master = assert(helpers.get_pid())
    assert.is_true(helpers.pid_alive(master))
    local workers = helpers.wait_until(function()
      local c = children(master)
      return #c == 2 and c
    end, 5)
    assert.equal(2, #workers)
    for _, w in ipairs(workers) do
      assert.is_not.equal(master, w)
    end
    assert.equal(200, (status_of("/one")))
  end)


  it("a worker killed with -9 is replaced, logged, and serving goes on",
     function()
    local master = assert(helpers.get_pid())
    local before = helpers.wait_until(function()
      local c = children(master)
      return #c == 2 and c
    end, 5)
    local victim = before[1]
    assert(util.kill(victim, "SIGKILL"))
    assert.is_true(util.wait_pid_gone(victim, 5))

    local after = helpers.wait_until(function()
      local c = children(master)
      if #c == 2 and not set_of(c)[victim] then
        return c
      end
    end, 5)
    assert.is_true(set_of(after)[before[2]] == true,
                   "the other worker was restarted too")
    assert.is_true(helpers.pid_alive(master))
    for _ = 1, 10 do
      assert.equal(200, (status_of("/one")))
    end
    assert.logfile(helpers.error_log()).has.line(
      "worker process " .. victim .. " exited on signal 9", true, 5)
  end)


  it("reload with a changed kong.yml serves the new route; old workers exit",
     function()
    local master = assert(helpers.get_pid())
    local old = helpers.wait_until(function()
      local c = children(master)
      return #c == 2 and c
    end, 5)
    assert.equal(404, (status_of("/two")))

    helpers.file.write(yml_path, yml({ { name = "one", path = "/one" },
                                       { name = "two", path = "/two" } }))
    local ok, stdout, stderr, code = helpers.kong_exec(
      "reload -c " .. q(conf_path) .. " -p " .. q(helpers.test_conf.prefix))
    assert.is_true(ok, stdout .. stderr)
    assert.equal(0, code)

    helpers.wait_until(function()
      return status_of("/two") == 200
    end, 5)
    assert.equal(200, (status_of("/one")))
    for _, pid in ipairs(old) do
      assert.is_true(util.wait_pid_gone(pid, 10),
                     "old worker " .. pid .. " still running")
    end
    assert.equal(master, helpers.get_pid())
    assert.is_true(helpers.pid_alive(master))
    local now = helpers.wait_until(function()
      local c = children(master)
      return #c == 2 and c
    end, 5)
    local olds = set_of(old)
    for _, pid in ipairs(now) do
      assert.is_nil(olds[pid])
    end
  end)


  it("reload drains: a request in flight on an old worker completes",
     function()
    local master = assert(helpers.get_pid())
    local old = helpers.wait_until(function()
      local c = children(master)
      return #c == 2 and c
    end, 5)
    local client = helpers.proxy_client(10000)
    assert(client:send_raw("GET /one/delay/2 HTTP/1.1\r\nHost: a\r\n\r\n"))
    helpers.sleep(0.4)
    helpers.file.write(yml_path, yml({ { name = "one", path = "/one" },
                                       { name = "two", path = "/two" } }))
    assert(util.kill(master, "SIGHUP"))
    helpers.wait_until(function()
      return status_of("/two") == 200
    end, 5)
    local data, how = client:receive_raw_response(5000, { idle = 300 })
    client:close()
    assert.matches("^HTTP/1%.1 200 ", data, nil, "got (" .. how .. "): "
                                                 .. data)
    for _, pid in ipairs(old) do
      assert.is_true(util.wait_pid_gone(pid, 5),
                     "old worker " .. pid .. " did not exit after draining")
    end
    assert.is_true(helpers.pid_alive(master))
  end)


  it("reload with a broken kong.yml fails and keeps the old config",
     function()
    local master = assert(helpers.get_pid())
    local old = helpers.wait_until(function()
      local c = children(master)
      return #c == 2 and c
    end, 5)

    helpers.file.write(yml_path, BROKEN_YML)
    local ok, stdout, stderr, code = helpers.kong_exec(
      "reload -c " .. q(conf_path) .. " -p " .. q(helpers.test_conf.prefix))
    assert.is_false(ok)
    assert.equal(1, code)
    local out = stdout .. stderr
    assert.matches(yml_path, out, 1, true)
    assert.matches("broken-route", out, 1, true)
    assert.matches("paths", out, 1, true)

    -- nothing changed
    helpers.sleep(0.5)
    assert.same(old, children(master))
    assert.equal(200, (status_of("/one")))

    -- A raw SIGHUP with the broken file in place: logged, old config kept.
    helpers.clean_logfile()
    assert(util.kill(master, "SIGHUP"))
    assert.logfile(helpers.error_log()).has.line(
      "reload failed, keeping the running configuration", true, 5)
    assert.logfile(helpers.error_log()).has.line(yml_path, true, 1)
    assert.is_true(helpers.pid_alive(master))
    for _ = 1, 5 do
      assert.equal(200, (status_of("/one")))
    end
    helpers.sleep(0.3)
    assert.same(old, children(master))

    -- and a fixed file reloads again
    helpers.file.write(yml_path, yml({ { name = "three", path = "/three" } }))
    assert(util.kill(master, "SIGHUP"))
    helpers.wait_until(function()
      return status_of("/three") == 200
    end, 5)
    assert.equal(404, (status_of("/one")))
  end)


  it("quit waits for an in-flight request, then the master exits",
     function()
    local master = assert(helpers.get_pid())
    local workers = helpers.wait_until(function()
      local c = children(master)
      return #c == 2 and c
    end, 5)
    local client = helpers.proxy_client(10000)
    assert(client:send_raw("GET /one/delay/2 HTTP/1.1\r\nHost: a\r\n\r\n"))
    -- The request reaches the mock: the route strips /one, so /delay/2.
    helpers.sleep(0.4)
    local t0 = helpers.now()
    assert(util.kill(master, "SIGQUIT"))

    -- New connections are refused soon after (listeners closed).
    helpers.wait_until(function()
      return not util.port_open("127.0.0.1", helpers.get_proxy_port(), 0.2)
    end, 1.5)
    assert.is_true(helpers.pid_alive(master),
                   "the master exited with a request in flight")

    local data, how = client:receive_raw_response(6000, { idle = 300 })
    client:close()
    local took = helpers.now() - t0
    assert.matches("^HTTP/1%.1 200 ", data, nil, "got (" .. how .. "): "
                                                 .. data)
    local body = data:match("\r\n\r\n(.*)$")
    assert.is_truthy(body)
    assert.truthy(took > 1, "answered too soon: " .. took)

    assert.is_true(util.wait_pid_gone(master, 5),
                   "the master did not exit after draining")
    for _, w in ipairs(workers) do
      assert.is_false(helpers.pid_alive(w), "worker " .. w .. " left over")
    end
  end)


  it("sluice quit with a request in flight: 200, then exit 0", function()
    local master = assert(helpers.get_pid())
    local client = helpers.proxy_client(10000)
    assert(client:send_raw("GET /one/delay/2 HTTP/1.1\r\nHost: a\r\n\r\n"))
    helpers.sleep(0.4)
    local ok, stdout, stderr, code = helpers.kong_exec(
      "quit -p " .. q(helpers.test_conf.prefix), nil, 20)
    assert.is_true(ok, stdout .. stderr)
    assert.equal(0, code)
    local data, how = client:receive_raw_response(5000, { idle = 300 })
    client:close()
    assert.matches("^HTTP/1%.1 200 ", data, nil, "got (" .. how .. "): "
                                                 .. data)
    assert.is_true(util.wait_pid_gone(master, 5))
  end)


  it("stop is fast even with a slow request in flight", function()
    local master = assert(helpers.get_pid())
    local workers = helpers.wait_until(function()
      local c = children(master)
      return #c == 2 and c
    end, 5)
    local client = helpers.proxy_client(10000)
    assert(client:send_raw("GET /one/delay/8 HTTP/1.1\r\nHost: a\r\n\r\n"))
    helpers.sleep(0.3)
    local t0 = helpers.now()
    local ok, stdout, stderr, code = helpers.kong_exec(
      "stop -p " .. q(helpers.test_conf.prefix), nil, 20)
    assert.is_true(ok, stdout .. stderr)
    assert.equal(0, code)
    assert.is_true(util.wait_pid_gone(master, 3))
    local took = helpers.now() - t0
    assert.truthy(took < 2, "stop took " .. took .. " s")
    for _, w in ipairs(workers) do
      assert.is_true(util.wait_pid_gone(w, 2), "worker " .. w .. " left over")
    end
    local data, how = client:receive_raw_response(2000, { idle = 300 })
    client:close()
    assert.equal("closed", how)
    assert.is_nil(data:find("^HTTP/1%.1 200 "))
  end)


  it("TERM to the master takes the workers down too", function()
    local master = assert(helpers.get_pid())
    local workers = helpers.wait_until(function()
      local c = children(master)
      return #c == 2 and c
    end, 5)
    assert(util.kill(master, "SIGTERM"))
    assert.is_true(util.wait_pid_gone(master, 5))
    for _, w in ipairs(workers) do
      assert.is_true(util.wait_pid_gone(w, 3), "worker " .. w .. " left over")
    end
  end)
end)
