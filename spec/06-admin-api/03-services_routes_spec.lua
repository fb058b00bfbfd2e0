-- Services and routes through the Admin API of a real gateway (database =
-- embedded): Kong's CRUD semantics with JSON, form-urlencoded and multipart
-- bodies, the nested endpoints, pagination, tags, and Kong's error bodies.

local support = require "spec.06-admin-api.support"


local request = support.request
local UUID = "^%x+%-%x+%-%x+%-%x+%-%x+$"


describe("Admin API services and routes", function()
  local node, client

  lazy_setup(function()
    node = support.start("services", { workers = 1 })
  end)

  lazy_teardown(function()
    node.stop()
  end)

  before_each(function()
    client = node.admin()
  end)

  after_each(function()
    client:close()
  end)

  for _, kind in ipairs(support.KINDS) do
    describe("with " .. kind .. " bodies", function()
      local sname = "svc-" .. kind
      local rname = "route-" .. kind
      local svc, route

      it("POST /services answers 201 with defaults, url expanded", function()
        local status, body = request(client, "POST", "/services", {
          name = sname, url = "https://example.test:8443/base",
          retries = kind == "json" and 3 or "3",
          tags = kind == "json" and { "t1", kind } or { "t1", kind },
        }, kind)
        assert.equal(201, status)
        assert.matches(UUID, body.id)
        assert.same({ sname, "https", "example.test", 8443, "/base", 3 },
                    { body.name, body.protocol, body.host, body.port,
                      body.path, body.retries })
        assert.same({ 60000, 60000, 60000, true },
                    { body.connect_timeout, body.read_timeout,
                      body.write_timeout, body.enabled })
        assert.same({ "t1", kind }, body.tags)
        -- every field is there, unset ones as null
        assert.equal(ngx and ngx.null or require("cjson").null,
                     body.client_certificate)
        assert.is_nil(body.url)
        svc = body
      end)

      it("GET /services/{name|id}", function()
        local status, by_name = request(client, "GET", "/services/" .. sname)
        assert.equal(200, status)
        assert.same(svc, by_name)
        local _, by_id = request(client, "GET", "/services/" .. svc.id)
        assert.same(svc, by_id)
      end)

      it("POST /services/{s}/routes with arrays", function()
        local body
        if kind == "json" then
          body = { name = rname, paths = { "/" .. kind, "/x-" .. kind },
                   methods = { "GET" }, strip_path = false }
        else
          body = { name = rname, ["paths[]"] = { "/" .. kind,
                                                 "/x-" .. kind },
                   methods = "GET", strip_path = "false" }
        end
        local status, res = request(client, "POST",
                                    "/services/" .. sname .. "/routes",
                                    body, kind)
        assert.equal(201, status)
        assert.same({ "/" .. kind, "/x-" .. kind }, res.paths)
        assert.same({ "GET" }, res.methods)
        assert.is_false(res.strip_path)
        assert.same({ "http", "https" }, res.protocols)
        assert.same({ id = svc.id }, res.service)
        route = res
      end)

      it("POST /routes with service.name", function()
        local body = { name = rname .. "-2", paths = { "/y-" .. kind } }
        if kind == "json" then
          body.service = { name = sname }
        else
          body["service.name"] = sname
        end
        local status, res = request(client, "POST", "/routes", body, kind)
        assert.equal(201, status)
        assert.same({ id = svc.id }, res.service)
        assert.equal(204, (request(client, "DELETE", "/routes/" .. res.id)))
      end)

      it("GET the nested and foreign endpoints", function()
        local status, body = request(client, "GET",
                                     "/services/" .. sname .. "/routes")
        assert.equal(200, status)
        assert.equal(1, #body.data)
        assert.same(route, body.data[1])
        status, body = request(client, "GET", "/routes/" .. rname
                                              .. "/service")
        assert.equal(200, status)
        assert.same(svc, body)
        status, body = request(client, "GET", "/services/" .. sname
                                              .. "/routes/" .. route.id)
        assert.equal(200, status)
        assert.same(route, body)
      end)

      it("PATCH merges and types form values", function()
        local status, body = request(client, "PATCH", "/services/" .. sname,
          { retries = kind == "json" and 7 or "7",
            path = kind == "json" and "/other" or "/other" }, kind)
        assert.equal(200, status)
        assert.same({ 7, "/other", "example.test", 8443, svc.id },
                    { body.retries, body.path, body.host, body.port,
                      body.id })
        -- url replaces protocol, host, port and path
        status, body = request(client, "PATCH", "/services/" .. sname,
                               { url = "http://other.test" }, kind)
        assert.equal(200, status)
        assert.same({ "http", "other.test", 80 },
                    { body.protocol, body.host, body.port })
        assert.equal(require("cjson").null, body.path)
        assert.equal(7, body.retries)
        -- arrays are replaced, not merged
        status, body = request(client, "PATCH",
          "/services/" .. sname .. "/routes/" .. rname,
          kind == "json" and { paths = { "/only-" .. kind } }
                         or { paths = "/only-" .. kind }, kind)
        assert.equal(200, status)
        assert.same({ "/only-" .. kind }, body.paths)
        assert.same({ "GET" }, body.methods)
      end)

      it("PUT upserts by name, keeping the id", function()
        local status, body = request(client, "PUT",
          "/services/" .. sname .. "-put",
          { host = "put.test", port = kind == "json" and 81 or "81" }, kind)
        assert.equal(200, status)
        assert.equal(sname .. "-put", body.name)
        local id = body.id
        status, body = request(client, "PUT", "/services/" .. sname
                                              .. "-put",
                               { host = "put2.test" }, kind)
        assert.equal(200, status)
        assert.equal(id, body.id)
        -- PUT replaces: what the body leaves out gets its default again
        assert.equal(80, body.port)
        assert.equal("put2.test", body.host)
        assert.equal(204, (request(client, "DELETE", "/services/" .. id)))
      end)

      it("DELETE refuses a service routes use, then cascades", function()
        local status, body = request(client, "DELETE", "/services/" .. sname)
        assert.equal(400, status)
        assert.same({
          code = 4,
          name = "foreign key violation",
          message = "an existing 'routes' entity references this "
                    .. "'services' entity",
          fields = { ["@referenced_by"] = "routes" },
        }, body)
        assert.equal(204, (request(client, "DELETE",
          "/services/" .. sname .. "/routes/" .. rname)))
        assert.equal(404, (request(client, "GET", "/routes/" .. rname)))
        assert.equal(204, (request(client, "DELETE", "/services/" .. sname)))
        assert.equal(404, (request(client, "GET", "/services/" .. sname)))
        -- DELETE of something absent is 204, as Kong
        assert.equal(204, (request(client, "DELETE", "/services/" .. sname)))
      end)
    end)
  end

  describe("errors", function()
    it("400 schema violation with Kong's fields and message", function()
      local status, body = request(client, "POST", "/services",
                                   { name = "bad", port = 70000 })
      assert.equal(400, status)
      assert.same({
        code = 2,
        name = "schema violation",
        message = "2 schema violations (host: required field missing; "
                  .. "port: value should be between 0 and 65535)",
        fields = { host = "required field missing",
                   port = "value should be between 0 and 65535" },
      }, body)
    end)

    it("a form value of the wrong type stays a schema violation", function()
      local status, body = request(client, "POST", "/services",
                                   { name = "bad", host = "h", port = "x" },
                                   "form")
      assert.equal(400, status)
      assert.same({ port = "expected an integer" }, body.fields)
    end)

    it("409 unique violation", function()
      assert.equal(201, (request(client, "POST", "/services",
                                 { name = "dup", host = "h" })))
      local status, body = request(client, "POST", "/services",
                                   { name = "dup", host = "h2" })
      assert.equal(409, status)
      assert.same({
        code = 5,
        name = "unique constraint violation",
        message = "UNIQUE violation detected on '{name=\"dup\"}'",
        fields = { name = "dup" },
      }, body)
      -- renaming onto a taken name too
      assert.equal(201, (request(client, "POST", "/services",
                                 { name = "dup2", host = "h" })))
      assert.equal(409, (request(client, "PATCH", "/services/dup2",
                                 { name = "dup" })))
    end)

    it("400 foreign key violation for an unknown service", function()
      local id = "5d2c8b4a-0a0b-4c0d-8e0f-101112131415"
      local status, body = request(client, "POST", "/routes",
                                   { paths = { "/fk" }, service = { id = id } })
      assert.equal(400, status)
      assert.same({
        code = 4,
        name = "foreign key violation",
        message = "the foreign key '{id=\"" .. id .. "\"}' does not "
                  .. "reference an existing 'services' entity.",
        fields = { service = { id = id } },
      }, body)
      status, body = request(client, "POST", "/routes",
                             { paths = { "/fk" }, ["service.id"] = "nope" },
                             "form")
      assert.equal(400, status)
      assert.same({ service = { id = "expected a valid UUID" } }, body.fields)
    end)

    it("a route needs a field to match on", function()
      local status, body = request(client, "POST", "/routes",
                                   { name = "nothing" })
      assert.equal(400, status)
      assert.same({ ["@entity"] = {
        "must set one of 'methods', 'hosts', 'headers', 'paths', 'snis' "
        .. "when 'protocols' is 'https'" } }, body.fields)
      status = request(client, "POST", "/routes",
                       { paths = { "~/(unclosed" } })
      assert.equal(400, status)
    end)

    it("404 for unknown entities and nested mismatches", function()
      assert.equal(404, (request(client, "GET", "/services/nope")))
      assert.equal(404, (request(client, "PATCH", "/services/nope",
                                 { retries = 1 })))
      assert.equal(404, (request(client, "GET", "/services/nope/routes")))
      assert.equal(404, (request(client, "POST", "/services/nope/routes",
                                 { paths = { "/n" } })))
      local _, a = request(client, "POST", "/services",
                           { name = "own-a", host = "h" })
      local _, b = request(client, "POST", "/services",
                           { name = "own-b", host = "h" })
      local _, r = request(client, "POST", "/services/own-a/routes",
                           { paths = { "/own" } })
      assert.equal(404, (request(client, "GET", "/services/own-b/routes/"
                                                .. r.id)))
      assert.equal(404, (request(client, "DELETE",
                                 "/services/own-b/routes/" .. r.id)))
      assert.equal(200, (request(client, "GET", "/routes/" .. r.id)))
      -- DELETE /routes/{r}/service is not allowed
      assert.equal(405, (request(client, "DELETE", "/routes/" .. r.id
                                                   .. "/service")))
      assert.equal(204, (request(client, "DELETE", "/routes/" .. r.id)))
      assert.equal(404, (request(client, "GET", "/routes/" .. r.id
                                                .. "/service")))
      assert.truthy(a and b)
    end)

    it("PUT /routes/{r}/service creates and links a service", function()
      local _, r = request(client, "POST", "/routes",
                           { name = "lonely", paths = { "/lonely" } })
      assert.equal(require("cjson").null, r.service)
      local status, s = request(client, "PUT", "/routes/lonely/service",
                                { name = "linked", host = "l.test" })
      assert.equal(200, status)
      local _, again = request(client, "GET", "/routes/lonely")
      assert.same({ id = s.id }, again.service)
      status, s = request(client, "PATCH", "/routes/lonely/service",
                          { retries = 2 })
      assert.equal(200, status)
      assert.equal(2, s.retries)
    end)
  end)

  describe("the remaining verbs of the nested forms", function()
    it("PUT /routes/{r}, /services/{s}/routes/{r}, /consumers/{c}",
       function()
      assert.equal(201, (request(client, "POST", "/services",
                                 { name = "nest", host = "h" })))
      local status, r = request(client, "PUT", "/routes/put-route",
                                { paths = "/put-route" }, "form")
      assert.equal(200, status)
      assert.same({ "/put-route" }, r.paths)
      assert.equal(require("cjson").null, r.service)
      local nested
      status, nested = request(client, "PUT",
                               "/services/nest/routes/put-route",
                               { paths = { "/nested-put" } }, "multipart")
      assert.equal(200, status)
      assert.equal(r.id, nested.id)
      assert.same({ "/nested-put" }, nested.paths)
      local _, svc = request(client, "GET", "/services/nest")
      assert.same({ id = svc.id }, nested.service)
      local c
      status, c = request(client, "PUT", "/consumers/put-user",
                          { custom_id = "pu" })
      assert.equal(200, status)
      assert.same({ "put-user", "pu" }, { c.username, c.custom_id })
    end)

    it("PATCH, PUT and DELETE /services/{s}/plugins/{p}", function()
      local status, p = request(client, "POST", "/services/nest/plugins",
                                { name = "my-plugin" }, "form")
      assert.equal(201, status)
      local path = "/services/nest/plugins/" .. p.id
      status, p = request(client, "PATCH", path,
                          { ["config.greeting"] = "n" }, "multipart")
      assert.equal(200, status)
      assert.equal("n", p.config.greeting)
      status, p = request(client, "PUT", path, { name = "my-plugin" })
      assert.equal(200, status)
      assert.equal("hello", p.config.greeting)
      assert.equal(404, (request(client, "DELETE", "/routes/put-route/"
                                                   .. "plugins/" .. p.id)))
      assert.equal(204, (request(client, "DELETE", path)))
      assert.equal(404, (request(client, "GET", "/plugins/" .. p.id)))
    end)

    it("GET /plugins/{p}/consumer", function()
      local _, c = request(client, "POST", "/consumers",
                           { username = "owner" })
      local _, p = request(client, "POST", "/consumers/owner/plugins",
                           { name = "my-plugin" })
      local status, got = request(client, "GET", "/plugins/" .. p.id
                                                 .. "/consumer")
      assert.equal(200, status)
      assert.equal(c.id, got.id)
      assert.equal(200, (request(client, "GET",
                                 "/plugins/schema/my-plugin")))
    end)
  end)

  describe("pagination and tags", function()
    lazy_setup(function()
      local c = node.admin()
      for i = 1, 7 do
        assert(request(c, "POST", "/consumers", {
          username = "page-" .. i,
          tags = { "page", i % 2 == 0 and "even" or "odd" },
        }) == 201)
      end
      c:close()
    end)

    it("pages with size and follows next to the end", function()
      local seen = {}
      local path = "/consumers?size=3&tags=page"
      local pages = 0
      while path do
        local status, body = request(client, "GET", path)
        assert.equal(200, status)
        pages = pages + 1
        for _, c in ipairs(body.data) do
          seen[#seen + 1] = c.username
        end
        if body.next == require("cjson").null then
          assert.is_nil(body.offset)
          path = nil
        else
          assert.is_string(body.offset)
          assert.matches("^/consumers%?offset=[^&]+&tags=page&size=3$",
                         body.next)
          path = body.next
        end
      end
      assert.equal(3, pages)
      assert.same({ "page-1", "page-2", "page-3", "page-4", "page-5",
                    "page-6", "page-7" }, seen)
    end)

    it("pages the store without tags", function()
      local status, body = request(client, "GET", "/consumers?size=2")
      assert.equal(200, status)
      assert.equal(2, #body.data)
      assert.matches("^/consumers%?offset=.+&size=2$", body.next)
      local _, body2 = request(client, "GET", body.next)
      assert.not_equal(body.data[1].id, body2.data[1].id)
    end)

    it("filters by tags: a,b is all of them, a/b any", function()
      local _, even = request(client, "GET", "/consumers?tags=page,even")
      assert.equal(3, #even.data)
      local _, any = request(client, "GET", "/consumers?tags=even/odd")
      assert.equal(7, #any.data)
      local _, none = request(client, "GET", "/consumers?tags=even,odd")
      assert.equal(0, #none.data)
    end)

    it("data is always an array", function()
      local _, _, _, text = request(client, "GET", "/consumers?tags=nope")
      assert.matches('"data":%[%]', text)
      assert.matches('"next":null', text)
    end)

    it("refuses bad sizes and offsets", function()
      for _, c in ipairs({
        { "0", "size must be an integer between 1 and 1000" },
        { "1001", "size must be an integer between 1 and 1000" },
        { "abc", "size must be a number" },
      }) do
        local status, body = request(client, "GET", "/consumers?size="
                                                    .. c[1])
        assert.equal(400, status)
        assert.same({ code = 9, name = "invalid size", message = c[2] },
                    body)
      end
      local status, body = request(client, "GET", "/consumers?offset=%21%21")
      assert.equal(400, status)
      assert.equal(7, body.code)
      assert.equal("invalid offset", body.name)
      assert.equal("'!!' is not a valid offset: bad base64 encoding",
                   body.message)
    end)

    it("pages nested collections", function()
      assert.equal(201, (request(client, "POST", "/services",
                                 { name = "many", host = "h" })))
      for i = 1, 3 do
        assert.equal(201, (request(client, "POST", "/services/many/routes",
                                   { paths = { "/many" .. i } })))
      end
      local _, body = request(client, "GET", "/services/many/routes?size=2")
      assert.equal(2, #body.data)
      assert.matches("^/services/many/routes%?offset=", body.next)
      local _, rest = request(client, "GET", body.next)
      assert.equal(1, #rest.data)
    end)

    it("finds consumers by custom_id", function()
      assert.equal(201, (request(client, "POST", "/consumers",
                                 { custom_id = "cid-1" })))
      local _, body = request(client, "GET", "/consumers?custom_id=cid-1")
      assert.equal(1, #body.data)
      assert.equal("cid-1", body.data[1].custom_id)
    end)
  end)

  describe("a failing store", function()
    it("answers Kong's 500 and recovers", function()
      local db = require "sluice.db"
      local st = assert(db.open(node.conf))
      assert(st:query("ALTER TABLE entities RENAME TO entities_moved"))
      local status, body = request(client, "GET", "/services")
      local wstatus = request(client, "POST", "/services",
                              { name = "lost", host = "h" })
      assert(st:query("ALTER TABLE entities_moved RENAME TO entities"))
      st:close()
      assert.equal(500, status)
      assert.same({ message = "An unexpected error occurred" }, body)
      assert.equal(500, wstatus)
      assert.equal(404, (request(client, "GET", "/services/lost")))
      assert.equal(200, (request(client, "GET", "/services")))
    end)
  end)
end)
