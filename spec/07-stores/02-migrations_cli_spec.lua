-- `sluice migrations bootstrap|up|list|finish|reset` through the real
-- build/sluice, on an embedded file and on a real PostgreSQL, with Kong's
-- messages and exit codes (list: 0 up to date, 3 needs bootstrap, 5 new
-- migrations). A pending migration is made by deleting its schema_meta row
-- (migrations are re-runnable), so `up` has real work to do.

local helpers = require "spec.helpers"
local util = require "spec.internal.util"
local pg = require "spec.internal.postgres"
local support = require "spec.07-stores.support"
local migrations = require "sluice.db.migrations"


local ALL = {}
for i, m in ipairs(migrations.MIGRATIONS) do
  ALL[i] = m.name
end
local LAST = ALL[#ALL]


local function suite(kind)
  local srv, conf

  lazy_setup(function()
    if kind == "postgres" then
      srv = assert(pg.start())
      conf = support.node_conf("cli-pg", srv)
      util.mkdir(conf.prefix)
    else
      conf = support.node_conf("cli-embedded", "embedded")
      util.mkdir(conf.prefix)
    end
  end)

  lazy_teardown(function()
    if srv then
      srv:stop()
    end
    util.rm_rf(conf.prefix)
  end)

  it("list on an empty database: exit 3 and Kong's bootstrap message",
     function()
    support.need_cli(pending)
    local ok, out, err, code = support.cli("migrations list", conf)
    assert.is_false(ok)
    assert.equal(3, code, out .. err)
    assert.matches("Database needs bootstrapping or is older than Kong 1.0",
                   out, 1, true)
    assert.matches("run 'sluice migrations bootstrap'", out, 1, true)
  end)

  it("up on an empty database refuses and points at bootstrap", function()
    support.need_cli(pending)
    local ok, out, err = support.cli("migrations up", conf)
    assert.is_false(ok)
    assert.matches("Cannot run migrations: Database needs bootstrapping",
                   err, 1, true)
    assert.equal("", out)
  end)

  it("bootstrap creates the schema, once", function()
    support.need_cli(pending)
    local ok, out, err = support.cli("migrations bootstrap", conf)
    assert.is_true(ok, out .. err)
    assert.matches("Bootstrapping database...", out, 1, true)
    for _, name in ipairs(ALL) do
      assert.matches("core migrated up to: " .. name .. " (executed)", out,
                     1, true)
    end
    assert.matches("Database is up-to-date", out, 1, true)
    -- the tables are really there
    local s = support.store(conf)
    assert.same({}, assert(s:all()).services)
    assert.equal(0, s:generation())
    s:close()

    ok, out, err = support.cli("migrations bootstrap", conf)
    assert.is_true(ok, out .. err)
    assert.matches("Database already bootstrapped", out, 1, true)
  end)

  it("list after bootstrap: exit 0, every migration executed", function()
    support.need_cli(pending)
    local ok, out, err, code = support.cli("migrations list", conf)
    assert.is_true(ok, out .. err)
    assert.equal(0, code)
    assert.matches("Executed migrations:\ncore: " .. table.concat(ALL, ", "),
                   out, 1, true)
    assert.not_matches("New migrations", out, 1, true)
  end)

  it("a pending migration: list says so (exit 5), up runs it, list is "
     .. "clean again", function()
    support.need_cli(pending)
    local s = support.store(conf)
    assert(s:query("DELETE FROM schema_meta WHERE name = ?", { LAST }))
    s:close()

    local ok, out, err, code = support.cli("migrations list", conf)
    assert.is_false(ok)
    assert.equal(5, code, out .. err)
    assert.matches("New migrations available:\ncore: " .. LAST, out, 1,
                   true)
    assert.matches("Run 'sluice migrations up' to proceed", out, 1, true)

    ok, out, err = support.cli("migrations up", conf)
    assert.is_true(ok, out .. err)
    assert.matches("core migrated up to: " .. LAST .. " (executed)", out, 1,
                   true)
    assert.not_matches("migrated up to: " .. ALL[1], out, 1, true)

    ok, out, err = support.cli("migrations up", conf)
    assert.is_true(ok, out .. err)
    assert.matches("Database is already up-to-date", out, 1, true)

    ok, out, err, code = support.cli("migrations list", conf)
    assert.equal(0, code, out .. err)
  end)

  it("finish has nothing to finish", function()
    support.need_cli(pending)
    local ok, out, err = support.cli("migrations finish", conf)
    assert.is_true(ok, out .. err)
    assert.matches("No pending migrations to finish", out, 1, true)
  end)

  it("reset asks first and does nothing unless confirmed", function()
    support.need_cli(pending)
    local ok, out, err = support.cli("migrations reset", conf, "n\n")
    assert.is_true(ok, out .. err)
    assert.matches("Are you sure? This operation is irreversible.", out, 1,
                   true)
    local _, _, _, code = support.cli("migrations list", conf)
    assert.equal(0, code)
  end)

  it("reset -y drops everything; list needs bootstrap again", function()
    support.need_cli(pending)
    local s = support.store(conf)
    support.write_route(s, "/x", "http://127.0.0.1:1")
    s:close()
    local ok, out, err = support.cli("migrations reset -y", conf)
    assert.is_true(ok, out .. err)
    assert.matches("Database successfully reset", out, 1, true)
    local _, lout, _, code = support.cli("migrations list", conf)
    assert.equal(3, code, lout)

    ok, out = support.cli("migrations reset -y", conf)
    assert.is_false(ok)
    assert.matches("Database not bootstrapped, nothing to reset", out, 1,
                   true)
  end)

  it("an unknown subcommand is an error with the usage", function()
    support.need_cli(pending)
    local ok, _, err = support.cli("migrations sideways", conf)
    assert.is_false(ok)
    assert.matches("sideways", err, 1, true)
    assert.matches("bootstrap", err, 1, true)
  end)
end


describe("sluice migrations #embedded", function()
  suite("embedded")
end)


if pg.available() then
  describe("sluice migrations #postgres", function()
    suite("postgres")

    it("an unreachable server is one clear error", function()
      support.need_cli(pending)
      local conf = support.node_conf("cli-pg-down", {
        conf = { pg_host = "127.0.0.1",
                 pg_port = helpers.get_available_port(),
                 pg_timeout = 1000 },
      })
      local ok, out, err = support.cli("migrations list", conf)
      assert.is_false(ok)
      assert.matches("[PostgreSQL error]", err, 1, true)
      assert.matches("Connection refused", err, 1, true)
      assert.equal("", out)
    end)
  end)
else
  pending("sluice migrations #postgres: " .. select(2, pg.available()))
end
