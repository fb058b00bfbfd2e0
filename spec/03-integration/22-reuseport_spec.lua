-- proxy_listen with the reuseport flag: every worker accepts on a socket of its
-- own (SO_REUSEPORT), the master holds none, and a respawned worker gets a new
-- one.

local helpers = require "spec.helpers"
local util = require "spec.internal.util"


local children = util.children


-- inodes of the sockets listening on 127.0.0.1:port (from /proc/net/tcp)
local function listening_inodes(port)
  local want = string.format("0100007F:%04X", port)
  local inodes = {}
  for line in io.lines("/proc/net/tcp") do
    local f = {}
    for w in line:gmatch("%S+") do
      f[#f + 1] = w
    end
    if f[2] == want and f[4] == "0A" then
      inodes[f[10]] = true
    end
  end
  return inodes
end


-- how many of `inodes` process `pid` has open (lua-posix's readlink trips on
-- /proc's zero-size links, so find reads them)
local function sockets_of(pid, inodes)
  local _, out = util.exec("find /proc/" .. tonumber(pid)
                           .. "/fd -lname 'socket:*' -printf '%l\\n'", nil, 5)
  local n = 0
  for inode in (out or ""):gmatch("socket:%[(%d+)%]") do
    if inodes[inode] then
      n = n + 1
    end
  end
  return n
end


describe("reuseport listeners", function()
  local port, master

  lazy_setup(function()
    local mock = assert(helpers.start_mock_upstream())
    port = helpers.get_available_port()
    assert(helpers.start_kong({
      proxy_listen = "127.0.0.1:" .. port .. " reuseport",
      worker_processes = 2,
      declarative_config = {
        _format_version = "3.0",
        services = { { name = "echo", url = mock.url,
                       routes = { { name = "r", paths = { "/" } } } } },
      },
    }))
    master = assert(helpers.get_pid())
  end)

  lazy_teardown(function()
    helpers.stop_kong()
  end)

  it("gives each worker its own listening socket and the master none", function()
    local workers = helpers.wait_until(function()
      local w = children(master)
      return #w == 2 and w
    end, 10)
    local inodes = listening_inodes(port)
    local count = 0
    for _ in pairs(inodes) do
      count = count + 1
    end
    assert.equal(2, count)
    assert.equal(0, sockets_of(master, inodes))
    assert.equal(1, sockets_of(workers[1], inodes))
    assert.equal(1, sockets_of(workers[2], inodes))
  end)

  it("serves every request on new connections across the workers", function()
    for _ = 1, 40 do
      local client = helpers.proxy_client(3000, port)
      local res = assert(client:get("/anything"))
      assert.res_status(200, res)
      client:close()
    end
  end)

  it("gives a respawned worker a fresh socket", function()
    local before = children(master)
    assert(util.exec("kill -9 " .. before[1], nil, 5))
    local after = helpers.wait_until(function()
      local w = children(master)
      return #w == 2 and w[1] ~= before[1] and w[2] ~= before[1] and w
    end, 10)
    local inodes = listening_inodes(port)
    for _, pid in ipairs(after) do
      assert.equal(1, sockets_of(pid, inodes))
    end
    for _ = 1, 20 do
      local client = helpers.proxy_client(3000, port)
      assert.res_status(200, assert(client:get("/anything")))
      client:close()
    end
  end)
end)
