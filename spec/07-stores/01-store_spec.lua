-- The store interface (lua/sluice/db) against both engines, in plain LuaJIT:
-- the embedded SQLite file in the run directory and a real PostgreSQL
-- started for this file (spec/internal/postgres.lua). Every method, the
-- transaction rules, unique keys, pagination, the generation, replace_all,
-- two processes writing at once, and failures that return instead of
-- raising.

local helpers = require "spec.helpers"
local util = require "spec.internal.util"
local pg = require "spec.internal.postgres"
local cjson = require "cjson"
local db = require "sluice.db"
local migrations = require "sluice.db.migrations"


local WRITER = helpers.ROOT .. "/spec/07-stores/fixtures/writer.lua"


local function names(rows)
  local out = {}
  for i, r in ipairs(rows) do
    out[i] = r.name or r.id
  end
  return out
end


local function svc(id, name, extra)
  local row = { id = id, name = name or id, host = "example.test",
                port = 80 }
  for k, v in pairs(extra or {}) do
    row[k] = v
  end
  return row
end


local function run_writer(conf, mode, arg, log)
  local path = util.tmpname("writer-conf") .. ".json"
  assert(util.write_file(path, cjson.encode(conf)))
  return assert(util.spawn("luajit " .. util.quote(WRITER) .. " "
                           .. util.quote(helpers.ROOT) .. " "
                           .. util.quote(path) .. " " .. mode .. " "
                           .. tostring(arg), log))
end


local function contract(strategy)
  local srv, conf, s

  lazy_setup(function()
    if strategy == "postgres" then
      srv = assert(pg.start())
      conf = { database = "postgres" }
      for k, v in pairs(srv.conf) do
        conf[k] = v
      end
    else
      local prefix = util.tmpname("store-prefix")
      util.mkdir(prefix)
      conf = { database = "embedded", prefix = prefix }
    end
    local boot = assert(db.open(conf))
    assert(migrations.bootstrap(boot))
    boot:close()
    s = assert(db.open(conf))
  end)

  lazy_teardown(function()
    if s then
      s:close()
    end
    if srv then
      srv:stop()
    end
  end)

  before_each(function()
    assert(s:replace_all({}))
  end)

  describe("insert / get / get_by", function()
    it("stores a row and reads it back by id and by unique field",
       function()
      local row = svc("11111111-0000-0000-0000-000000000001", "orders",
                      { tags = { "a", "b" }, path = cjson.null,
                        created_at = 1700000000 })
      local stored, err = s:insert("services", row, { name = "orders" })
      assert.is_nil(err)
      assert.same(row, stored)
      local got = assert(s:get("services", row.id))
      assert.same("orders", got.name)
      assert.same({ "a", "b" }, got.tags)
      assert.equal(cjson.null, got.path)          -- JSON null is kept
      assert.same(got, s:get_by("services", "name", "orders"))
    end)

    it("answers nil without an error for what is absent", function()
      local row, err = s:get("services", "nope")
      assert.is_nil(row)
      assert.is_nil(err)
      row, err = s:get_by("services", "name", "nope")
      assert.is_nil(row)
      assert.is_nil(err)
      -- a field that is not a unique key of the row finds nothing
      assert(s:insert("services", svc("x1", "n1"), { name = "n1" }))
      assert.is_nil(s:get_by("services", "host", "example.test"))
    end)

    it("keeps entities apart: the same id in two entities", function()
      assert(s:insert("services", svc("same", "a"), { name = "a" }))
      assert(s:insert("routes", { id = "same", paths = { "/" } }))
      assert.equal("a", s:get("services", "same").name)
      assert.same({ "/" }, s:get("routes", "same").paths)
    end)

    it("reports a unique violation with entity, field and value and "
       .. "writes nothing", function()
      assert(s:insert("services", svc("a1", "dup"), { name = "dup" }))
      local gen = s:generation()
      local row, err, info = s:insert("services", svc("a2", "dup"),
                                      { name = "dup" })
      assert.is_nil(row)
      assert.equal("unique violation", err)
      assert.same({ entity = "services", field = "name", value = "dup" },
                  info)
      assert.is_nil(s:get("services", "a2"))
      assert.equal(gen, s:generation())
    end)

    it("reports the second unique key that collides, and keeps the "
       .. "first free", function()
      assert(s:insert("consumers", { id = "c1", username = "bob",
                                     custom_id = "42" },
                      { username = "bob", custom_id = "42" }))
      local row, err, info = s:insert("consumers",
                                      { id = "c2", username = "alice",
                                        custom_id = "42" },
                                      { username = "alice",
                                        custom_id = "42" })
      assert.is_nil(row)
      assert.equal("unique violation", err)
      assert.equal("custom_id", info.field)
      assert.equal("42", info.value)
      -- nothing half-written: "alice" is still free
      assert(s:insert("consumers", { id = "c3", username = "alice" },
                      { username = "alice" }))
    end)

    it("reports a duplicate id as a unique violation on 'id'", function()
      assert(s:insert("services", svc("d1", "one"), { name = "one" }))
      local row, err, info = s:insert("services", svc("d1", "two"),
                                      { name = "two" })
      assert.is_nil(row)
      assert.equal("unique violation", err)
      assert.same({ entity = "services", field = "id", value = "d1" }, info)
      assert.equal("one", s:get("services", "d1").name)
      assert.is_nil(s:get_by("services", "name", "two"))
    end)

    it("unique values are per entity and per field", function()
      assert(s:insert("services", svc("p1", "same"), { name = "same" }))
      assert(s:insert("routes", { id = "p2", name = "same" },
                      { name = "same" }))
      assert(s:insert("consumers", { id = "p3", username = "same",
                                     custom_id = "same" },
                      { username = "same", custom_id = "same" }))
    end)

    it("ignores null unique values", function()
      assert(s:insert("consumers", { id = "n1", username = "u1",
                                     custom_id = cjson.null },
                      { username = "u1", custom_id = cjson.null }))
      assert(s:insert("consumers", { id = "n2", username = "u2",
                                     custom_id = cjson.null },
                      { username = "u2", custom_id = cjson.null }))
    end)
  end)

  describe("update / delete", function()
    it("replaces the row and moves its unique keys", function()
      assert(s:insert("services", svc("u1", "old"), { name = "old" }))
      local row = assert(s:update("services", "u1",
                                  svc("u1", "new", { port = 8080 }),
                                  { name = "new" }))
      assert.equal(8080, row.port)
      assert.equal(8080, s:get("services", "u1").port)
      assert.equal("u1", s:get_by("services", "name", "new").id)
      assert.is_nil(s:get_by("services", "name", "old"))
      -- the old name is free again
      assert(s:insert("services", svc("u2", "old"), { name = "old" }))
    end)

    it("refuses an update onto another row's unique key and keeps the "
       .. "row", function()
      assert(s:insert("services", svc("v1", "first"), { name = "first" }))
      assert(s:insert("services", svc("v2", "second"), { name = "second" }))
      local row, err, info = s:update("services", "v2",
                                      svc("v2", "first"), { name = "first" })
      assert.is_nil(row)
      assert.equal("unique violation", err)
      assert.equal("name", info.field)
      assert.equal("second", s:get("services", "v2").name)
      assert.equal("v2", s:get_by("services", "name", "second").id)
    end)

    it("update of an absent row answers nil without an error", function()
      local row, err = s:update("services", "ghost", svc("ghost"), {})
      assert.is_nil(row)
      assert.is_nil(err)
      assert.is_nil(s:get("services", "ghost"))
    end)

    it("delete removes the row and frees its unique keys; absent is "
       .. "false", function()
      assert(s:insert("services", svc("w1", "gone"), { name = "gone" }))
      assert.is_true(s:delete("services", "w1"))
      assert.is_nil(s:get("services", "w1"))
      assert.is_nil(s:get_by("services", "name", "gone"))
      assert(s:insert("services", svc("w2", "gone"), { name = "gone" }))
      local gen = s:generation()
      assert.is_false(s:delete("services", "nothing-here"))
      assert.equal(gen, s:generation())
    end)
  end)

  describe("list", function()
    local function fill(n)
      -- created_at in reverse of the id order, with two rows sharing one
      -- timestamp, so the order must come from created_at then id
      local ids = {}
      for i = 1, n do
        local id = string.format("r%02d", i)
        local ts = 1000 + (n - i)
        if i == n then
          ts = 1000 + 1             -- same second as r(n-1): id decides
        end
        assert(s:insert("routes", { id = id, name = id, created_at = ts,
                                    service = { id = i % 2 == 0 and "even"
                                                or "odd" },
                                    protocols = { "http" },
                                    even = i % 2 == 0 },
                        { name = id }))
        ids[#ids + 1] = id
      end
      return ids
    end

    it("orders by created_at then id", function()
      fill(5)
      local rows, offset = s:list("routes")
      assert.is_nil(offset)
      -- ts: r01 1004, r02 1003, r03 1002, r04 1001, r05 1001
      assert.same({ "r04", "r05", "r03", "r02", "r01" }, names(rows))
    end)

    it("pages with size and opaque offsets that cover every row once",
       function()
      fill(7)
      local seen = {}
      local pages = 0
      local offset
      repeat
        local rows, next_offset = s:list("routes", { size = 3,
                                                     offset = offset })
        assert.truthy(rows, next_offset)
        assert.truthy(#rows <= 3)
        for _, r in ipairs(rows) do
          seen[#seen + 1] = r.id
        end
        pages = pages + 1
        assert.not_equal(offset, next_offset)
        offset = next_offset
      until not offset
      assert.equal(3, pages)
      assert.same(names(s:list("routes", { size = 100 })), seen)
    end)

    it("gives no offset when the page ends exactly at the last row",
       function()
      fill(4)
      local rows, offset = s:list("routes", { size = 4 })
      assert.equal(4, #rows)
      assert.is_nil(offset)
    end)

    it("keeps offsets stable when rows are inserted before them",
       function()
      fill(6)
      local first, offset = s:list("routes", { size = 3 })
      -- a row created earlier than everything lands before the cursor
      assert(s:insert("routes", { id = "early", name = "early",
                                  created_at = 1 }, { name = "early" }))
      local second = s:list("routes", { size = 3, offset = offset })
      for _, a in ipairs(first) do
        for _, b in ipairs(second) do
          assert.not_equal(a.id, b.id)
        end
      end
      assert.equal(3, #second)
    end)

    it("filters on foreign keys and on top-level fields", function()
      fill(7)
      local rows = s:list("routes", { filter = { service_id = "even" } })
      assert.same({ "r06", "r04", "r02" }, names(rows))
      rows = s:list("routes", { filter = { even = false } })
      assert.same({ "r07", "r05", "r03", "r01" }, names(rows))
      -- filtered pages: size counts matching rows only
      local page, offset = s:list("routes", { size = 2,
                                              filter = { even = false } })
      assert.same({ "r07", "r05" }, names(page))
      page, offset = s:list("routes", { size = 2, offset = offset,
                                        filter = { even = false } })
      assert.same({ "r03", "r01" }, names(page))
      assert.is_nil(offset)
      rows = s:list("routes", { filter = { service_id = "none" } })
      assert.same({}, rows)
    end)

    it("refuses a bad offset or size with an error, not a raise",
       function()
      local rows, err = s:list("routes", { offset = "%%%not-base64" })
      assert.is_nil(rows)
      assert.equal("invalid offset", err)
      rows, err = s:list("routes", { offset = "Zm9v" })   -- "foo"
      assert.is_nil(rows)
      assert.equal("invalid offset", err)
      rows, err = s:list("routes", { size = 0 })
      assert.is_nil(rows)
      assert.matches("size", err)
      rows, err = s:list("routes", { size = 1001 })
      assert.is_nil(rows)
    end)
  end)

  describe("tx", function()
    it("commits what fn wrote when it returns truthy, and returns its "
       .. "results", function()
      local a, b = s:tx(function(st)
        assert(st:insert("services", svc("t1"), { name = "t1" }))
        assert(st:insert("services", svc("t2"), { name = "t2" }))
        -- reads inside see the transaction's writes
        return st:get("services", "t1"), #st:all().services
      end)
      assert.equal("t1", a.id)
      assert.equal(2, b)
      assert.truthy(s:get("services", "t2"))
    end)

    it("rolls back when fn returns nil, and returns fn's results",
       function()
      local ok, err = s:tx(function(st)
        assert(st:insert("services", svc("t3"), { name = "t3" }))
        return nil, "changed my mind"
      end)
      assert.is_nil(ok)
      assert.equal("changed my mind", err)
      assert.is_nil(s:get("services", "t3"))
      assert.is_nil(s:get_by("services", "name", "t3"))
    end)

    it("rolls back when fn raises and returns nil, err", function()
      local ok, err = s:tx(function(st)
        assert(st:insert("services", svc("t4"), { name = "t4" }))
        error("boom in the middle")
      end)
      assert.is_nil(ok)
      assert.matches("boom in the middle", err)
      assert.is_nil(s:get("services", "t4"))
      -- the store is usable afterwards
      assert(s:insert("services", svc("t4"), { name = "t4" }))
    end)

    it("a failed write inside a tx leaves the tx's other writes", function()
      assert(s:insert("services", svc("t5", "taken"), { name = "taken" }))
      local ok = s:tx(function(st)
        assert(st:insert("services", svc("t6"), { name = "t6" }))
        local row, err = st:insert("services", svc("t7", "taken"),
                                   { name = "taken" })
        assert.is_nil(row)
        assert.equal("unique violation", err)
        assert(st:insert("services", svc("t8"), { name = "t8" }))
        return true
      end)
      assert.is_true(ok)
      assert.truthy(s:get("services", "t6"))
      assert.truthy(s:get("services", "t8"))
      assert.is_nil(s:get("services", "t7"))
    end)

    it("nested tx: an inner rollback keeps the outer writes", function()
      assert(s:tx(function(st)
        assert(st:insert("services", svc("n1"), { name = "n1" }))
        local r = st:tx(function(inner)
          assert(inner:insert("services", svc("n2"), { name = "n2" }))
          return nil
        end)
        assert.is_nil(r)
        return true
      end))
      assert.truthy(s:get("services", "n1"))
      assert.is_nil(s:get("services", "n2"))
    end)

    it("refuses another coroutine while a tx is open", function()
      local other
      assert(s:tx(function()
        local co = coroutine.create(function()
          return s:get("services", "x")
        end)
        local _, row, err = coroutine.resume(co)
        other = { row, err }
        return true
      end))
      assert.is_nil(other[1])
      assert.matches("store busy", other[2])
      -- and serves it again once the tx is over
      local co = coroutine.create(function()
        return s:insert("services", svc("after"), { name = "after" })
      end)
      local ok, row = coroutine.resume(co)
      assert.is_true(ok)
      assert.equal("after", row.id)
    end)
  end)

  describe("generation", function()
    it("moves once per committing write transaction and never otherwise",
       function()
      local g0 = assert(s:generation())
      assert(s:insert("services", svc("g1"), { name = "g1" }))
      assert.equal(g0 + 1, s:generation())
      assert(s:tx(function(st)
        assert(st:insert("services", svc("g2"), { name = "g2" }))
        assert(st:update("services", "g2", svc("g2", "g2b"),
                         { name = "g2b" }))
        assert(st:delete("services", "g1"))
        return true
      end))
      assert.equal(g0 + 2, s:generation())
      -- rolled back, read-only, failed: no move
      s:tx(function(st)
        st:insert("services", svc("g3"), { name = "g3" })
        return nil
      end)
      assert(s:tx(function(st)
        return st:get("services", "g2") ~= nil
      end))
      s:list("services")
      s:all()
      s:insert("services", svc("g4", "g2b"), { name = "g2b" })
      assert.equal(g0 + 2, s:generation())
    end)

    it("is read in the same snapshot as all()", function()
      assert(s:insert("services", svc("sn1"), { name = "sn1" }))
      local everything, gen = s:snapshot()
      assert.equal(s:generation(), gen)
      assert.same({ "sn1" }, names(everything.services))
    end)
  end)

  describe("all / replace_all", function()
    it("all() returns every entity in creation order, custom ones too",
       function()
      assert(s:insert("services", svc("s-b", "b", { created_at = 20 }),
                      { name = "b" }))
      assert(s:insert("services", svc("s-a", "a", { created_at = 10 }),
                      { name = "a" }))
      assert(s:insert("keyauth_credentials", { id = "k1", key = "secret",
                                               consumer = { id = "c" } },
                      { key = "secret" }))
      local everything = assert(s:all())
      assert.same({ "a", "b" }, names(everything.services))
      assert.same({}, everything.routes)
      assert.same({}, everything.plugins)
      assert.same({}, everything.consumers)
      assert.equal("secret", everything.keyauth_credentials[1].key)
    end)

    it("replace_all swaps the whole content in one transaction", function()
      assert(s:insert("services", svc("old1", "old"), { name = "old" }))
      local g0 = s:generation()
      assert(s:replace_all({
        _format_version = "3.0",
        services = { svc("n1", "web"), svc("n2", "api") },
        routes = { { id = "rt1", name = "root", paths = { "/" },
                     service = { id = "n1" } } },
        consumers = { { id = "cs1", username = "bob" } },
        plugins = { { id = "pl1", name = "pre-function",
                      route = { id = "rt1" }, config = {} } },
        keyauth_credentials = { { id = "k1", key = "k" } },
      }))
      assert.equal(g0 + 1, s:generation())
      assert.is_nil(s:get("services", "old1"))
      local everything = s:all()
      -- the document's order is kept
      assert.same({ "web", "api" }, names(everything.services))
      assert.equal("rt1", everything.routes[1].id)
      assert.equal("k1", everything.keyauth_credentials[1].id)
      -- unique keys were rebuilt: old name free, new ones taken
      assert(s:insert("services", svc("x", "old"), { name = "old" }))
      assert.equal("n2", s:get_by("services", "name", "api").id)
      assert.equal("cs1", s:get_by("consumers", "username", "bob").id)
      assert.equal("pl1", s:get_by("plugins", "cache_key",
                                   "pre-function|rt1||").id)
      assert.equal(1, #s:list("routes", { filter = { service_id = "n1" } }))
    end)

    it("replace_all with a duplicate changes nothing", function()
      assert(s:insert("services", svc("keep", "keep"), { name = "keep" }))
      local g0 = s:generation()
      local ok, err, info = s:replace_all({
        services = { svc("d1", "same"), svc("d2", "same") },
      })
      assert.is_nil(ok)
      assert.equal("unique violation", err)
      assert.equal("name", info.field)
      assert.truthy(s:get("services", "keep"))
      assert.is_nil(s:get("services", "d1"))
      assert.equal(g0, s:generation())
    end)
  end)

  if strategy == "postgres" then
    it("pg_schema: bootstrap creates the schema, the store lives in it",
       function()
      local c = {}
      for k, v in pairs(conf) do
        c[k] = v
      end
      c.pg_schema = "sluice cfg"        -- needs quoting as an identifier
      local other = assert(db.open(c))
      assert(migrations.bootstrap(other))
      assert(other:insert("services", svc("in-schema"),
                          { name = "in-schema" }))
      assert.equal("in-schema", other:get("services", "in-schema").id)
      other:close()
      -- the default schema did not get it
      assert.is_nil(s:get("services", "in-schema"))
      local ok, out = srv:psql("SELECT count(*) FROM \"sluice cfg\".entities")
      assert.is_true(ok)
      assert.equal("1", out:match("%d+"))
    end)

    it("pg_ssl = on requires TLS (this server has none)", function()
      local c = {}
      for k, v in pairs(conf) do
        c[k] = v
      end
      c.pg_ssl = true
      local other = assert(db.open(c))
      local gen, err = other:generation()
      assert.is_nil(gen)
      assert.matches("SSL", err, 1, true)
      c.pg_ssl = "off"
      other = assert(db.open(c))
      assert.truthy(other:generation())
      other:close()
    end)
  end

  describe("two processes", function()
    it("write the same store at once without losing a row", function()
      local start = util.tmpname("go")
      local c = {}
      for k, v in pairs(conf) do
        c[k] = v
      end
      c.start = start
      c.tag = "child"
      local log = util.tmpname("writer") .. ".log"
      local pid = run_writer(c, "insert", 40, log)
      local g0 = s:generation()
      util.write_file(start, "go")
      for i = 1, 40 do
        local id = string.format("parent-%04d", i)
        assert(s:insert("services", svc(id), { name = id }))
      end
      assert(util.wait_pid_gone(pid, 30))
      assert.matches("done 40", util.read_file(log))
      assert.equal(80, #s:list("services", { size = 1000 }))
      assert.equal(g0 + 80, s:generation())
    end)

    -- SQLite has one writer at a time: the second waits (busy_timeout);
    -- PostgreSQL runs both at once (the generation row is locked only at
    -- commit). Either way both commit.
    it("a writer waits for or runs beside the other's transaction, never "
       .. "fails", function()
      local c = {}
      for k, v in pairs(conf) do
        c[k] = v
      end
      c.tag = "holder"
      c.locked = util.tmpname("locked")
      local g0 = s:generation()
      local log = util.tmpname("holder") .. ".log"
      local pid = run_writer(c, "hold", 1, log)
      helpers.wait_until(function()
        return util.exists(c.locked)
      end, 10, 0.01)
      local t0 = util.now()
      local row, err = s:tx(function(st)
        return st:insert("services", svc("waiter"), { name = "waiter" })
      end)
      local waited = util.now() - t0
      assert.is_nil(err)
      assert.equal("waiter", row.id)
      assert(util.wait_pid_gone(pid, 10))
      assert.matches("done 1", util.read_file(log))
      if strategy == "embedded" then
        assert.truthy(waited > 0.5, "waited only " .. waited .. " s")
      end
      assert.truthy(s:get("services", "holder"))
      assert.equal(g0 + 2, s:generation())
    end)

    it("another connection sees a write once it is committed", function()
      local other = assert(db.open(conf))
      local g0 = assert(other:generation())
      assert(s:tx(function(st)
        assert(st:insert("services", svc("seen"), { name = "seen" }))
        return true
      end))
      assert.equal(g0 + 1, other:generation())
      assert.equal("seen", other:get("services", "seen").id)
      other:close()
    end)
  end)
end


describe("store contract #embedded", function()
  contract("embedded")

  it("an unopenable file is an error, not a raise", function()
    local s = assert(db.open({ database = "embedded",
                               prefix = "/nonexistent/dir" }))
    local row, err = s:get("services", "x")
    assert.is_nil(row)
    assert.matches("SQLite", err)
    local ok, terr = s:tx(function()
      return true
    end)
    assert.is_nil(ok)
    assert.matches("SQLite", terr)
  end)

  it("the file is in WAL mode", function()
    local prefix = util.tmpname("wal")
    util.mkdir(prefix)
    local s = assert(db.open({ database = "embedded", prefix = prefix }))
    local rows = assert(s:query("PRAGMA journal_mode"))
    assert.equal("wal", rows[1].journal_mode)
    s:close()
  end)
end)


if pg.available() then
  describe("store contract #postgres", function()
    contract("postgres")

    it("an unreachable server is an error, not a raise", function()
      local s = assert(db.open({ database = "postgres",
                                 pg_host = "127.0.0.1",
                                 pg_port = helpers.get_available_port(),
                                 pg_timeout = 1000 }))
      local gen, err = s:generation()
      assert.is_nil(gen)
      assert.matches("PostgreSQL error", err)
      local ok, terr = s:insert("services", svc("x"), {})
      assert.is_nil(ok)
      assert.matches("PostgreSQL error", terr)
    end)
  end)
else
  pending("store contract #postgres: " .. select(2, pg.available()))
end
