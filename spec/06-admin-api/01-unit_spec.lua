-- The Admin API's pieces in plain LuaJIT: Kong's argument conventions
-- (form names, type inference, multipart), the router, Kong's error
-- tables, the JSON encoder ([] for empty arrays), and the DAO semantics
-- over an in-memory store with the store interface
-- (spec.06-admin-api.memstore.lua).

local cjson = require "cjson.safe"
local args = require "sluice.admin.args"
local router_mod = require "sluice.admin.router"
local errors = require "sluice.admin.errors"
local json = require "sluice.admin.json"
local dao = require "sluice.admin.dao"
local readonly = require "sluice.admin.readonly"
local memstore = require "spec.06-admin-api.memstore"


local NULL = cjson.null


describe("admin args", function()
  local cases = {
    { "arrays with []", { ["paths[]"] = { "/a", "/b" } },
      { paths = { "/a", "/b" } } },
    { "a repeated name", { paths = { "/a", "/b" } },
      { paths = { "/a", "/b" } } },
    { "a single value", { paths = "/a" }, { paths = "/a" } },
    { "records with dots", { ["config.host"] = "x", ["config.port"] = "1" },
      { config = { host = "x", port = "1" } } },
    { "foreign keys", { ["service.id"] = "abc" },
      { service = { id = "abc" } } },
    { "indexes in order", { ["config.list[2]"] = "b",
                            ["config.list[1]"] = "a" },
      { config = { list = { "a", "b" } } } },
    { "sparse indexes compact", { ["l[9]"] = "z", ["l[3]"] = "y" },
      { l = { "y", "z" } } },
    { "nested records", { ["config.a.b.c"] = "deep" },
      { config = { a = { b = { c = "deep" } } } } },
    { "a leading dot is a plain name", { [".x"] = "1" }, { [".x"] = "1" } },
  }
  for _, c in ipairs(cases) do
    it("decodes " .. c[1], function()
      assert.same(c[3], args.decode(c[2]))
    end)
  end

  it("types form values by the schema", function()
    local schema = require "sluice.schema.entities.services"
    local t = args.infer(args.decode({
      port = "8080", retries = "x", enabled = "false", tags = "one",
      path = "", name = "svc",
    }), schema)
    assert.same({ port = 8080, retries = "x", enabled = false,
                  tags = { "one" }, path = NULL, name = "svc" }, t)
  end)

  it("types nested records and array elements", function()
    local schema = { fields = {
      { config = { type = "record", fields = {
        { n = { type = "integer" } },
        { list = { type = "array", elements = { type = "number" } } },
        { m = { type = "map", keys = { type = "string" },
                values = { type = "boolean" } } },
      } } },
    } }
    local t = args.infer(args.decode({
      ["config.n"] = "3", ["config.list[]"] = { "1.5", "2" },
      ["config.m.a"] = "true",
    }), schema)
    assert.same({ config = { n = 3, list = { 1.5, 2 }, m = { a = true } } },
                t)
  end)

  it("parses multipart bodies: repeated names, JSON parts, quoting", function()
    local body = table.concat({
      "--XyZ\r\n",
      'Content-Disposition: form-data; name="paths[]"\r\n\r\n/a\r\n',
      "--XyZ\r\n",
      'Content-Disposition: form-data; name="paths[]"\r\n\r\n/b\r\n',
      "--XyZ\r\n",
      'Content-Disposition: form-data; name="config"\r\n',
      "Content-Type: application/json\r\n\r\n",
      '{"k":[1,2]}\r\n',
      "--XyZ\r\n",
      'Content-Disposition: form-data; name="text"\r\n\r\n',
      "line1\r\nline2\r\n",
      "--XyZ--\r\n",
    })
    local t = assert(args.parse_body(body, "multipart",
                                     'multipart/form-data; boundary="XyZ"'))
    assert.same({ paths = { "/a", "/b" }, config = { k = { 1, 2 } },
                  text = "line1\r\nline2" }, t)
  end)

  it("refuses bodies that are not what they claim", function()
    assert.is_nil(args.parse_body("{bad", "json"))
    assert.is_nil(args.parse_body("x", "multipart", "multipart/form-data"))
    assert.equal("json", args.body_kind("application/json; charset=utf-8"))
    assert.equal("form", args.body_kind("application/x-www-form-urlencoded"))
    assert.equal("multipart", args.body_kind("multipart/form-data; b=1"))
    assert.is_nil(args.body_kind("text/plain"))
  end)

  it("decodes query strings", function()
    assert.same({ size = "2", tags = "a,b", ["x"] = { y = "1" } },
                args.query("size=2&tags=a%2Cb&x.y=1"))
  end)
end)


describe("admin router", function()
  local r = router_mod.new()
  r:add("/plugins/:plugins", { GET = "entity" })
  r:add("/plugins/enabled", { GET = "enabled" })
  r:add("/schemas/:db_entity_name/validate", { POST = "validate_entity" })
  r:add("/schemas/plugins/:name", { GET = "plugin_schema" })
  r:add("/schemas/plugins/validate", { POST = "validate_plugin" })
  r:add("/", { GET = "root" })

  local cases = {
    { "/plugins/enabled", "enabled" },
    { "/plugins/abc", "entity", { plugins = "abc" } },
    { "/plugins/a%20b", "entity", { plugins = "a b" } },
    { "/plugins/abc/", "entity", { plugins = "abc" } },
    { "/schemas/plugins/validate", "validate_plugin" },
    { "/schemas/plugins/jwt", "plugin_schema", { name = "jwt" } },
    { "/schemas/routes/validate", "validate_entity",
      { db_entity_name = "routes" } },
    { "/", "root" },
  }
  for _, c in ipairs(cases) do
    it("routes " .. c[1], function()
      local route, params = r:match(c[1])
      assert.truthy(route)
      local _, handler = next(route.methods)
      assert.equal(c[2], handler)
      if c[3] then
        assert.same(c[3], params)
      end
    end)
  end

  it("finds nothing for unknown paths", function()
    assert.is_nil(r:match("/nope"))
    assert.is_nil(r:match("/plugins/a/b/c"))
  end)
end)


describe("admin errors and JSON", function()
  it("prints tables as Kong (pl.pretty one-line, null)", function()
    local e = errors.unique_violation({ name = "x", consumer = NULL,
                                        service = { id = "1" } })
    assert.equal("UNIQUE violation detected on "
                 .. "'{consumer=null,name=\"x\",service={id=\"1\"}}'",
                 e.message)
    assert.equal(5, e.code)
    assert.equal("unique constraint violation", e.name)
    assert.equal(409, errors.status_of(e))
  end)

  it("maps codes to Kong's statuses", function()
    assert.equal(400, errors.status_of(errors.schema_violation({ a = "b" })))
    assert.equal(405, errors.status_of(errors.operation_unsupported("x")))
    assert.equal(400, errors.status_of(errors.invalid_size("x")))
    assert.equal(500, errors.status_of(errors.database_error("x")))
  end)

  it("encodes empty arrays as [] and keeps cjson's escaping", function()
    assert.equal('{"a":[],"b":{},"c":[1,"\\/x"],"d":null}',
                 json.encode({ a = json.array({}), b = {}, c = { 1, "/x" },
                               d = NULL }))
  end)
end)


describe("admin dao over a store", function()
  local s, services, routes, consumers

  before_each(function()
    s = memstore.new()
    services = dao.get_def("services")
    routes = dao.get_def("routes")
    consumers = dao.get_def("consumers")
  end)

  local function tx(fn)
    local out, err_t
    s:tx(function(st)
      out, err_t = fn(st)
      return out ~= nil
    end)
    return out, err_t
  end

  it("inserts with the url shorthand, defaults and an id", function()
    local row = assert(tx(function(st)
      return dao.insert(st, services, { name = "s1",
                                        url = "https://example.test:8443/p" })
    end))
    assert.matches("^%x+%-%x+%-%x+%-%x+%-%x+$", row.id)
    assert.same({ "https", "example.test", 8443, "/p", 5, 60000 },
                { row.protocol, row.host, row.port, row.path, row.retries,
                  row.read_timeout })
    assert.equal(NULL, row.tags)
    assert.same(row, dao.select(s, services, "s1"))
    assert.same(row, dao.select(s, services, row.id))
  end)

  it("reports unique and foreign key violations as Kong", function()
    assert(tx(function(st)
      return dao.insert(st, services, { name = "s1", host = "h" })
    end))
    local _, err_t = tx(function(st)
      return dao.insert(st, services, { name = "s1", host = "h" })
    end)
    assert.equal(5, err_t.code)
    assert.same({ name = "s1" }, err_t.fields)

    local missing = "00000000-0000-4000-8000-000000000000"
    _, err_t = tx(function(st)
      return dao.insert(st, routes, { paths = { "/" },
                                      service = { id = missing } })
    end)
    assert.equal(4, err_t.code)
    assert.equal("the foreign key '{id=\"" .. missing .. "\"}' does not "
                 .. "reference an existing 'services' entity.",
                 err_t.message)

    _, err_t = tx(function(st)
      return dao.insert(st, routes, { paths = { "/" },
                                      service = { name = "nope" } })
    end)
    assert.equal(13, err_t.code)
  end)

  it("restricts deleting a referenced service, cascades plugins", function()
    local svc = assert(tx(function(st)
      return dao.insert(st, services, { name = "s1", host = "h" })
    end))
    local route = assert(tx(function(st)
      return dao.insert(st, routes, { paths = { "/" },
                                      service = { name = "s1" } })
    end))
    assert.equal(svc.id, route.service.id)
    local _, err_t = tx(function(st)
      return dao.delete(st, services, svc)
    end)
    assert.equal(4, err_t.code)
    assert.same({ ["@referenced_by"] = "routes" }, err_t.fields)
    assert(tx(function(st)
      return dao.delete(st, routes, route)
    end))
    assert(tx(function(st)
      return dao.delete(st, services, svc)
    end))
    assert.is_nil(dao.select(s, services, "s1"))
  end)

  it("merges PATCH bodies and keeps ids on PUT by name", function()
    local svc = assert(tx(function(st)
      return dao.insert(st, services, { name = "s1", url = "http://a/p" })
    end))
    local up = assert(tx(function(st)
      return dao.update(st, services, svc, { retries = 1 })
    end))
    assert.same({ 1, "/p", "a" }, { up.retries, up.path, up.host })
    up = assert(tx(function(st)
      return dao.update(st, services, up, { url = "http://b" })
    end))
    assert.same({ "b", NULL, 80 }, { up.host, up.path, up.port })
    local put = assert(tx(function(st)
      return dao.upsert(st, services, "s1", { host = "c" })
    end))
    assert.equal(svc.id, put.id)
    assert.equal(5, put.retries)
    local new = assert(tx(function(st)
      return dao.upsert(st, services, "s2", { host = "d" })
    end))
    assert.equal("s2", new.name)
    assert.not_equal(svc.id, new.id)
  end)

  it("pages with size and offset, filters by tags", function()
    for i = 1, 5 do
      assert(tx(function(st)
        return dao.insert(st, consumers, {
          username = "u" .. i,
          tags = i % 2 == 0 and { "even", "all" } or { "odd", "all" } })
      end))
    end
    local rows, _, offset = assert(dao.page(s, consumers, "2"))
    assert.equal(2, #rows)
    local rows2, _, offset2 = dao.page(s, consumers, 2, offset)
    assert.same({ "u3", "u4" }, { rows2[1].username, rows2[2].username })
    local rows3, _, offset3 = dao.page(s, consumers, 2, offset2)
    assert.same({ "u5" }, { rows3[1].username })
    assert.is_nil(offset3)

    local even = dao.page(s, consumers, nil, nil, nil, "even,all")
    assert.equal(2, #even)
    local both = dao.page(s, consumers, nil, nil, nil, "even/odd")
    assert.equal(5, #both)
    local p1, _, o1 = dao.page(s, consumers, 3, nil, nil, "all")
    local p2 = dao.page(s, consumers, 3, o1, nil, "all")
    assert.same({ 3, 2 }, { #p1, #p2 })

    local _, err_t = dao.page(s, consumers, 0)
    assert.equal(9, err_t.code)
    _, err_t = dao.page(s, consumers, "x")
    assert.equal("size must be a number", err_t.message)
  end)

  it("reads a running configuration the same way (DB-less)", function()
    local src = readonly.new({
      services = { { id = "s-1", name = "a", host = "h" } },
      routes = { { id = "r-1", paths = { "/" }, service = { id = "s-1" } },
                 { id = "r-2", paths = { "/x" } } },
    })
    assert.equal("a", src:get_by("services", "name", "a").name)
    local rows = src:list("routes", { filter = { service_id = "s-1" } })
    assert.same({ "r-1" }, { rows[1].id })
    local page1, off = src:list("routes", { size = 1 })
    local page2 = src:list("routes", { size = 1, offset = off })
    assert.same({ "r-1", "r-2" }, { page1[1].id, page2[1].id })
  end)
end)
