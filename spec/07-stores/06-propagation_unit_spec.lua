-- sluice.db's propagation logic in plain LuaJIT, with sluice.config replaced
-- by a recorder: what init_worker, the poller and changed() apply and when,
-- the once-per-outage log, a refused config that is not retried every
-- poll, and the back-off after a failure that blocked the worker.

local util = require "spec.internal.util"
local migrations = require "sluice.db.migrations"


describe("sluice.db propagation", function()
  local db, applied, refuse, conf, s, logged

  before_each(function()
    applied, refuse, logged = {}, false, {}
    package.loaded["sluice.config"] = {
      apply = function(doc)
        if refuse then
          return nil, "refused on purpose"
        end
        applied[#applied + 1] = doc
        return true
      end,
    }
    package.loaded["sluice.db"] = nil
    db = require "sluice.db"
    db._reset()
    -- capture the log (no ngx here: init.lua writes to stderr otherwise)
    _G.ngx = {
      ERR = 4, NOTICE = 6,
      log = function(level, ...)
        logged[#logged + 1] = { level, table.concat({ ... }) }
      end,
    }
    local prefix = util.tmpname("prop")
    util.mkdir(prefix)
    conf = { database = "embedded", prefix = prefix }
    s = assert(db.open(conf))
    assert(migrations.bootstrap(s))
  end)

  after_each(function()
    _G.ngx = nil
    db._reset()
    s:close()
    package.loaded["sluice.config"] = nil
  end)

  local function count(level, needle)
    local n = 0
    for _, l in ipairs(logged) do
      if l[1] == level and l[2]:find(needle, 1, true) then
        n = n + 1
      end
    end
    return n
  end

  it("init_worker applies the store's content as a 3.0 document",
     function()
    assert(s:insert("services", { id = "s1", name = "one", host = "h" },
                    { name = "one" }))
    assert(s:insert("my_plugin_keys", { id = "k1", key = "x" }))
    assert(db.init_worker(conf))
    assert.equal(1, #applied)
    local doc = applied[1]
    assert.equal("3.0", doc._format_version)
    assert.equal("one", doc.services[1].name)
    assert.same({}, doc.routes)
    assert.same({}, doc.plugins)
    assert.same({}, doc.consumers)
    -- entities the declarative loader does not know stay out
    assert.is_nil(doc.my_plugin_keys)
  end)

  it("the poller applies only when the generation moved", function()
    assert(db.init_worker(conf))
    db.poll()
    db.poll()
    assert.equal(1, #applied)
    assert(s:insert("services", { id = "s2", name = "two", host = "h" }))
    db.poll()
    assert.equal(2, #applied)
    assert.equal("two", applied[2].services[1].name)
    db.poll()
    assert.equal(2, #applied)
  end)

  it("changed() applies at once", function()
    assert(db.init_worker(conf))
    assert(s:insert("services", { id = "s3", name = "three", host = "h" }))
    assert(db.changed())
    assert.equal(2, #applied)
  end)

  it("a refused config is logged once and not retried until the next "
     .. "change", function()
    assert(db.init_worker(conf))
    refuse = true
    assert(s:insert("services", { id = "s4", name = "four", host = "h" }))
    db.poll()
    db.poll()
    db.poll()
    assert.equal(1, count(ngx.ERR, "refused on purpose"))
    refuse = false
    assert(s:insert("services", { id = "s5", name = "five", host = "h" }))
    db.poll()
    assert.equal(2, #applied)
  end)

  it("an unreachable store is logged once per outage; the config stays",
     function()
    assert(db.init_worker(conf))
    local real = db.store()
    local down = true
    db._set_store(setmetatable({
      generation = function()
        if down then
          return nil, "[SQLite error] disk on fire"
        end
        return real:generation()
      end,
    }, { __index = real }))
    for _ = 1, 5 do
      db.poll()
    end
    assert.equal(1, count(ngx.ERR, "configuration store unreachable"))
    assert.equal(1, #applied)
    down = false
    assert(s:insert("services", { id = "s6", name = "six", host = "h" }))
    db.poll()
    assert.equal(1, count(ngx.NOTICE, "reachable again"))
    assert.equal(2, #applied)
    down = true
    db.poll()
    assert.equal(2, count(ngx.ERR, "configuration store unreachable"))
  end)

  it("backs off after a failure that blocked the worker", function()
    assert(db.init_worker(conf))
    local calls = 0
    db._set_store(setmetatable({
      generation = function()
        calls = calls + 1
        util.sleep(0.15)          -- a silent host: the call blocks
        return nil, "[PostgreSQL error] timeout expired"
      end,
    }, { __index = db.store() }))
    for _ = 1, 10 do
      db.poll()
    end
    -- the first failure set a 1 s back-off: the next 9 polls skip
    assert.equal(1, calls)
  end)
end)
