local declarative = require "sluice.declarative"
local validate = require "sluice.schema.validate"
local uuid = require "sluice.uuid"


local FIXTURES = "spec/fixtures/declarative/"


local function load(yaml, opts)
  return declarative.load_string(yaml, "kong.yml", opts)
end


-- "_format_version" header plus the body
local function doc(body)
  return '_format_version: "3.0"\n' .. body
end


local function find_by(list, field, value)
  for _, row in ipairs(list) do
    if row[field] == value then
      return row
    end
  end
end


describe("sluice.uuid", function()
  it("computes SHA-1", function()
    local cases = {
      { "", "da39a3ee5e6b4b0d3255bfef95601890afd80709" },
      { "abc", "a9993e364706816aba3e25717850c26c9cd0d89d" },
      { ("x"):rep(55), "cef734ba81a024479e09eb5a75b6ddae62e6abf1" },
      { ("x"):rep(64), "bb2fa3ee7afb9f54c6dfb5d021f14b1ffe40c163" },
    }
    for _, c in ipairs(cases) do
      assert.equal(c[2], uuid.hex(uuid.sha1(c[1])))
    end
  end)

  it("generates RFC 4122 v5 UUIDs", function()
    -- the example in resty.jit-uuid, same as Python's uuid.uuid5
    assert.equal("4850816f-1658-5890-8bfd-1ed14251f1f0",
                 uuid.generate_v5("e6ebd542-06ae-11e6-8e82-bba81706b27d",
                                  "hello"))
  end)

  it("generates random v4 UUIDs", function()
    local a, b = uuid.generate_v4(), uuid.generate_v4()
    assert.is_true(uuid.is_valid(a))
    assert.not_equal(a, b)
    assert.equal("4", a:sub(15, 15))
    assert.truthy(a:sub(20, 20):find("[89ab]"))
  end)

  it("validates UUIDs", function()
    assert.is_true(uuid.is_valid("9748F662-7711-4a90-8186-dc02f10eb0f5"))
    assert.is_false(uuid.is_valid("9748f662-7711-4a90-8186-dc02f10eb0f"))
    assert.is_false(uuid.is_valid(42))
  end)

  it("raises on misuse", function()
    assert.has_error(function() uuid.generate_v5("nope", "x") end,
                     "namespace must be a valid UUID")
  end)
end)


describe("sluice.schema.validate", function()
  local schema = {
    fields = {
      { n = { type = "integer", between = { 0, 10 }, default = 3 } },
      { s = { type = "string", required = true } },
      { set = { type = "set", elements = { type = "string",
                                           one_of = { "a", "b" } } } },
      { rec = { type = "record", fields = {
        { x = { type = "boolean", default = false } },
      } } },
    },
  }

  it("fills defaults and deduplicates sets", function()
    local out, errs = validate.validate_record(schema,
                                               { s = "v", set = { "a", "a" },
                                                 rec = {} })
    assert.is_nil(errs)
    assert.same({ n = 3, s = "v", set = { "a" }, rec = { x = false } }, out)
  end)

  it("reports Kong's messages, nested like Kong", function()
    local _, errs = validate.validate_record(schema, {
      n = 1.5, set = { "a", "c" }, rec = { x = 1 }, zz = true,
    })
    assert.same({
      n = "expected an integer",
      s = "required field missing",
      set = { [2] = "expected one of: a, b" },
      rec = { x = "expected a boolean" },
      zz = "unknown field",
    }, errs)
  end)

  it("rejects empty strings by default", function()
    local _, errs = validate.validate_record(schema, { s = "" })
    assert.same({ s = "length must be at least 1" }, errs)
  end)
end)


describe("sluice.declarative", function()

  describe("good files", function()
    it("loads the nested form", function()
      local cfg, err = declarative.load_file(FIXTURES .. "nested.yml")
      assert.is_nil(err)
      assert.equal("3.0", cfg._format_version)
      assert.equal(1, #cfg.services)
      assert.equal(1, #cfg.routes)
      assert.equal(1, #cfg.consumers)
      assert.equal(3, #cfg.plugins)

      local svc = cfg.services[1]
      assert.same({
        id = svc.id, name = "echo", protocol = "http", host = "127.0.0.1",
        port = 15555, path = "/base", retries = 5, connect_timeout = 60000,
        write_timeout = 60000, read_timeout = 60000, enabled = true,
        tags = { "demo" },
      }, svc)

      local route = cfg.routes[1]
      assert.same({
        id = route.id, name = "echo-route", service = { id = svc.id },
        protocols = { "http", "https" }, methods = { "GET", "POST" },
        paths = { "/echo" }, regex_priority = 0, strip_path = true,
        preserve_host = false, path_handling = "v0",
        https_redirect_status_code = 426, request_buffering = true,
        response_buffering = true,
      }, route)

      local key_auth = find_by(cfg.plugins, "name", "key-auth")
      assert.same({ id = route.id }, key_auth.route)
      assert.is_nil(key_auth.service)
      assert.same({ key_names = { "apikey" } }, key_auth.config)
      assert.same({ "grpc", "grpcs", "http", "https" }, key_auth.protocols)
      assert.is_true(key_auth.enabled)

      local pre = find_by(cfg.plugins, "name", "pre-function")
      assert.same({ id = svc.id }, pre.service)

      local rl = find_by(cfg.plugins, "name", "rate-limiting")
      assert.same({ id = cfg.consumers[1].id }, rl.consumer)
      -- null in config is absent
      assert.same({ minute = 5 }, rl.config)

      assert.same({ id = cfg.consumers[1].id, username = "alice",
                    custom_id = "a-1" }, cfg.consumers[1])
    end)

    it("loads the flat form with references by name and id", function()
      local cfg, err = declarative.load_file(FIXTURES .. "flat.yml")
      assert.is_nil(err)
      local sid = "9748f662-7711-4a90-8186-dc02f10eb0f5"
      assert.equal(sid, cfg.services[1].id)
      assert.same({ id = sid }, find_by(cfg.routes, "name", "by-name").service)
      assert.same({ id = sid }, find_by(cfg.routes, "name", "by-id").service)
      local ka = find_by(cfg.plugins, "name", "key-auth")
      assert.same({ id = find_by(cfg.routes, "name", "by-name").id }, ka.route)
      assert.same({}, ka.config)
      local rl = find_by(cfg.plugins, "name", "rate-limiting")
      assert.same({ id = sid }, rl.service)
      assert.same({ id = cfg.consumers[1].id }, rl.consumer)
    end)

    it("loads JSON", function()
      local cfg, err = declarative.load_file(FIXTURES .. "good.json")
      assert.is_nil(err)
      local svc = cfg.services[1]
      assert.equal("https", svc.protocol)
      assert.equal(15555, svc.port)
      assert.is_nil(svc.path)
      assert.is_nil(svc.tls_verify)   -- JSON null is absent
      assert.is_nil(cfg.routes[1].headers)
      assert.equal("alice", cfg.consumers[1].username)
    end)

    it("loads the example", function()
      local cfg, err = declarative.load_file("examples/kong.yml")
      assert.is_nil(err)
      assert.equal("127.0.0.1", cfg.services[1].host)
      assert.equal(8001, cfg.services[1].port)
      assert.same({ "/admin-info" }, cfg.routes[1].paths)
      assert.equal(15555, cfg.services[2].port)
      assert.same({ "/echo" }, cfg.routes[2].paths)
    end)

    it("generates the same ids on every load, as Kong does", function()
      local a = declarative.load_file(FIXTURES .. "nested.yml")
      local b = declarative.load_file(FIXTURES .. "nested.yml")
      assert.equal(a.services[1].id, b.services[1].id)
      assert.equal(a.routes[1].id, b.routes[1].id)
      assert.equal(a.consumers[1].id, b.consumers[1].id)
      for i = 1, #a.plugins do
        assert.equal(a.plugins[i].id, b.plugins[i].id)
      end
      -- Kong: v5(v5(namespace, "services"), name)
      local ns = uuid.generate_v5(declarative.NAMESPACE, "services")
      assert.equal(uuid.generate_v5(ns, "echo"), a.services[1].id)
    end)

    it("generates random ids for nameless entities", function()
      local yml = doc("services:\n- host: a.test\n")
      local a = load(yml)
      local b = load(yml)
      assert.is_true(uuid.is_valid(a.services[1].id))
      assert.not_equal(a.services[1].id, b.services[1].id)
    end)

    it("keeps given ids", function()
      local cfg = load(doc(
        "consumers:\n- id: 0c7d5a4c-4c4b-4f8e-9e8a-1c2d3e4f5a6b\n"
        .. "  custom_id: c1\n"))
      assert.equal("0c7d5a4c-4c4b-4f8e-9e8a-1c2d3e4f5a6b",
                   cfg.consumers[1].id)
    end)

    it("accepts the metadata keys and format versions", function()
      for _, v in ipairs({ "1.1", "2.1", "3.0" }) do
        local cfg, err = load('_format_version: "' .. v .. '"\n'
                              .. "_transform: false\n_comment: hi\n"
                              .. "_ignore: [1, a]\n")
        assert.is_nil(err)
        assert.equal(v, cfg._format_version)
        assert.same({}, cfg.services)
      end
    end)

    it("splits url shorthands", function()
      local cases = {
        { "http://a.test", "http", "a.test", 80 },
        { "https://a.test", "https", "a.test", 443 },
        { "https://a.test:8443/p/q?x=1", "https", "a.test", 8443, "/p/q" },
        { "grpc://a.test:9000", "grpc", "a.test", 9000 },
        { "http://[::1]:81/", "http", "[::1]", 81, "/" },
      }
      for _, c in ipairs(cases) do
        local cfg, err = load(doc("services:\n- url: " .. c[1] .. "\n"))
        assert.is_nil(err, c[1])
        local s = cfg.services[1]
        assert.same({ c[2], c[3], c[4], c[5] },
                    { s.protocol, s.host, s.port, s.path }, c[1])
      end
    end)

    it("fills the grpc route subschema defaults", function()
      local cfg, err = load(doc(
        "routes:\n- protocols: [grpc]\n  paths: [/svc.Method]\n"))
      assert.is_nil(err)
      assert.is_false(cfg.routes[1].strip_path)
    end)

    it("passes plugin rows to opts.plugin_check", function()
      local seen
      local cfg = load(doc("plugins:\n- name: cors\n  config: {a: 1}\n"), {
        plugin_check = function(row)
          seen = row
          return true
        end,
      })
      assert.equal("cors", seen.name)
      assert.same({ a = 1 }, cfg.plugins[1].config)
    end)
  end)


  describe("errors", function()
    -- { description, body (after _format_version), expected message }
    local CASES = {
      -- top level
      { "unknown top-level key", "upstreams: []\n",
        "kong.yml: upstreams: unknown field" },
      { "entity list not an array", "services: {a: 1}\n",
        "kong.yml: services: expected an array" },
      -- services
      { "port range",
        "services:\n- name: echo\n  host: h\n  port: 70000\n",
        "kong.yml: services[1] (name 'echo'): port: value should be "
        .. "between 0 and 65535" },
      { "port type",
        "services:\n- name: echo\n  host: h\n  port: '80'\n",
        "kong.yml: services[1] (name 'echo'): port: expected an integer" },
      { "host required", "services:\n- name: echo\n",
        "kong.yml: services[1] (name 'echo'): host: required field missing" },
      { "host with a port", "services:\n- host: a.test:80\n",
        "kong.yml: services[1]: host: must not have a port" },
      { "protocol",
        "services:\n- host: h\n  protocol: ftp\n",
        "kong.yml: services[1]: protocol: expected one of: grpc, grpcs, "
        .. "http, https, tcp, tls, tls_passthrough, udp, ws, wss" },
      { "path start", "services:\n- host: h\n  path: x\n",
        "kong.yml: services[1]: path: should start with: /" },
      { "path on tcp",
        "services:\n- host: h\n  protocol: tcp\n  path: /x\n",
        "kong.yml: services[1]: path: value must be null\n"
        .. "kong.yml: services[1]: failed conditional validation given "
        .. "value of field 'protocol'" },
      { "retries", "services:\n- host: h\n  retries: 40000\n",
        "kong.yml: services[1]: retries: value should be between 0 and "
        .. "32767" },
      { "timeout", "services:\n- host: h\n  read_timeout: 0\n",
        "kong.yml: services[1]: read_timeout: value should be between 1 "
        .. "and 2147483646" },
      { "name", "services:\n- name: 'a b'\n  host: h\n",
        "kong.yml: services[1] (name 'a b'): name: invalid value 'a b': "
        .. "the only accepted ascii characters are alphanumerics or ., -, "
        .. "_, and ~" },
      { "unknown field", "services:\n- host: h\n  hots: x\n",
        "kong.yml: services[1]: hots: unknown field" },
      { "url type", "services:\n- url: 5\n",
        "kong.yml: services[1]: host: required field missing\n"
        .. "kong.yml: services[1]: url: expected a string" },
      { "duplicate name",
        "services:\n- name: a\n  host: h\n- name: a\n  host: h\n",
        "kong.yml: services[2] (name 'a'): uniqueness violation: "
        .. "'services' entity with name set to 'a' already declared" },
      { "invalid id", "services:\n- id: 123-abc\n  host: h\n",
        "kong.yml: services[1]: id: expected a valid UUID" },
      { "duplicate id",
        "services:\n- id: 9748f662-7711-4a90-8186-dc02f10eb0f5\n  host: h\n"
        .. "- id: 9748f662-7711-4a90-8186-dc02f10eb0f5\n  host: h\n",
        "kong.yml: services[2]: uniqueness violation: 'services' entity "
        .. "with primary key set to '9748f662-7711-4a90-8186-dc02f10eb0f5' "
        .. "already declared" },
      -- routes
      { "nested path start",
        "services:\n- name: echo\n  host: h\n  routes:\n"
        .. "  - paths: [/a]\n  - paths: [x]\n",
        "kong.yml: services[1] (name 'echo').routes[2]: paths[1]: should "
        .. "start with: / (fixed path) or ~/ (regex path)" },
      { "empty path segments", "routes:\n- paths: [/a//b]\n",
        "kong.yml: routes[1]: paths[1]: must not have empty segments" },
      { "non-normalized path", "routes:\n- paths: [/a/../b]\n",
        "kong.yml: routes[1]: paths[1]: non-normalized path, consider use "
        .. "'/b' instead" },
      { "http route without matcher", "routes:\n- name: r\n",
        "kong.yml: routes[1] (name 'r'): must set one of 'methods', "
        .. "'hosts', 'headers', 'paths', 'snis' when 'protocols' is "
        .. "'https'" },
      { "http-only route without matcher",
        "routes:\n- protocols: [http]\n",
        "kong.yml: routes[1]: must set one of 'methods', 'hosts', "
        .. "'headers', 'paths' when 'protocols' is 'http'" },
      { "host header", "routes:\n- headers: {Host: [a]}\n",
        "kong.yml: routes[1]: headers: cannot contain 'host' header, "
        .. "which must be specified in the 'hosts' attribute" },
      { "path_handling", "routes:\n- paths: [/a]\n  path_handling: v2\n",
        "kong.yml: routes[1]: path_handling: expected one of: v0, v1" },
      { "https_redirect_status_code",
        "routes:\n- paths: [/a]\n  https_redirect_status_code: 300\n",
        "kong.yml: routes[1]: https_redirect_status_code: expected one of: "
        .. "426, 301, 302, 307, 308" },
      { "methods", "routes:\n- methods: [get]\n",
        "kong.yml: routes[1]: methods[1]: invalid value: get" },
      { "mixed protocols", "routes:\n- protocols: [http, tcp]\n"
        .. "  paths: [/a]\n",
        "kong.yml: routes[1]: protocols: these sets are mutually "
        .. "exclusive: ('http', 'https'), ('tcp', 'tls', 'udp')" },
      { "stream route with paths",
        "routes:\n- protocols: [tcp]\n  paths: [/a]\n"
        .. "  destinations: [{port: 80}]\n",
        "kong.yml: routes[1]: paths: cannot set 'paths' when 'protocols' "
        .. "is 'tcp', 'tls', 'tls_passthrough' or 'udp'" },
      { "snis on http", "routes:\n- protocols: [http]\n  snis: [a.test]\n",
        "kong.yml: routes[1]: snis: length must be 0\n"
        .. "kong.yml: routes[1]: 'snis' can only be set when 'protocols' is "
        .. "'grpcs', 'https', 'tls', 'tls_passthrough', or 'wss'\n"
        .. "kong.yml: routes[1]: must set one of 'methods', 'hosts', "
        .. "'headers', 'paths' when 'protocols' is 'http'" },
      { "strip_path on grpc",
        "routes:\n- protocols: [grpc]\n  paths: [/a]\n  strip_path: true\n",
        "kong.yml: routes[1]: strip_path: cannot set 'strip_path' when "
        .. "'protocols' is 'grpc' or 'grpcs'" },
      { "missing service reference",
        "routes:\n- name: r1\n  service: echo\n  paths: [/x]\n",
        "kong.yml: routes[1] (name 'r1'): invalid reference 'service: echo' "
        .. "(no such entry in 'services')" },
      { "parent FK in a nested route",
        "services:\n- name: s\n  host: h\n  routes:\n  - service: s\n"
        .. "    paths: [/a]\n",
        "kong.yml: services[1] (name 's').routes[1]: service: value must be "
        .. "null" },
      -- consumers
      { "consumer without username or custom_id",
        "consumers:\n- tags: [a]\n",
        "kong.yml: consumers[1]: at least one of these fields must be "
        .. "non-empty: 'custom_id', 'username'" },
      { "duplicate username",
        "consumers:\n- username: bob\n- username: bob\n",
        "kong.yml: consumers[2] (username 'bob'): uniqueness violation: "
        .. "'consumers' entity with username set to 'bob' already declared" },
      { "duplicate custom_id",
        "consumers:\n- custom_id: c\n- custom_id: c\n",
        "kong.yml: consumers[2] (custom_id 'c'): uniqueness violation: "
        .. "'consumers' entity with custom_id set to 'c' already declared" },
      -- plugins
      { "plugin name", "plugins:\n- config: {}\n",
        "kong.yml: plugins[1]: name: required field missing" },
      { "plugin config", "plugins:\n- name: cors\n  config: 5\n",
        "kong.yml: plugins[1] (name 'cors'): config: expected a record" },
      { "same plugin twice",
        "services:\n- name: s\n  host: h\n  plugins:\n  - name: cors\n"
        .. "plugins:\n- name: cors\n  service: s\n",
        "kong.yml: plugins[1] (name 'cors'): uniqueness violation: "
        .. "'plugins' entity with name set to 'cors' already declared for "
        .. "the same route, service and consumer" },
      { "missing consumer reference",
        "plugins:\n- name: cors\n  consumer: bob\n",
        "kong.yml: plugins[1] (name 'cors'): invalid reference 'consumer: "
        .. "bob' (no such entry in 'consumers')" },
    }

    for _, c in ipairs(CASES) do
      it(c[1], function()
        local cfg, err, err_t = load(doc(c[2]))
        assert.is_nil(cfg)
        assert.equal(c[3], err)
        assert.equal(14, err_t.code)
      end)
    end

    it("requires _format_version", function()
      local _, err = declarative.load_file(FIXTURES .. "bad-version.yml")
      assert.equal(FIXTURES .. "bad-version.yml: _format_version: required "
                   .. "field missing", err)
      _, err = load('_format_version: "4.0"\n')
      assert.equal("kong.yml: _format_version: expected one of: 1.1, 2.1, "
                   .. "3.0", err)
    end)

    it("names the file and line of YAML syntax errors", function()
      local _, err, err_t = declarative.load_file(FIXTURES
                                                  .. "bad-syntax.yml")
      assert.equal(FIXTURES .. "bad-syntax.yml:5:5: invalid YAML: did not "
                   .. "find expected ',' or ']'", err)
      assert.equal(14, err_t.code)
      assert.matches("^failed parsing declarative configuration: ",
                     err_t.message)
    end)

    it("names the file and line of JSON syntax errors", function()
      local _, err = declarative.load_file(FIXTURES .. "bad-syntax.json")
      assert.matches("^" .. FIXTURES:gsub("%-", "%%-")
                     .. "bad%-syntax%.json:3: invalid JSON: ", err)
    end)

    it("rejects a document that is not an object", function()
      local _, err = load("- a\n- b\n")
      assert.equal("kong.yml: expected an object", err)
      _, err = load("")
      assert.equal("kong.yml: expected an object", err)
    end)

    it("reports a missing file", function()
      local cfg, err = declarative.load_file("/nonexistent/kong.yml")
      assert.is_nil(cfg)
      assert.matches("/nonexistent/kong.yml", err, 1, true)
    end)

    it("checks regex paths with opts.regex_check", function()
      local yml = doc("routes:\n- paths: ['~/(a']\n")
      local cfg = load(yml)
      assert.truthy(cfg)  -- accepted as is without a checker
      local _, err = load(yml, {
        regex_check = function(re)
          assert.equal("/(a", re)
          return nil, "missing closing parenthesis"
        end,
      })
      assert.equal("kong.yml: routes[1]: paths[1]: invalid regex: '/(a' "
                   .. "(PCRE returned: missing closing parenthesis)", err)
    end)

    it("reports plugin_check errors", function()
      local _, err = load(doc("plugins:\n- name: http-log\n"), {
        plugin_check = function()
          return nil, { config = { http_endpoint = "required field missing" } }
        end,
      })
      assert.equal("kong.yml: plugins[1] (name 'http-log'): "
                   .. "config.http_endpoint: required field missing", err)
    end)

    it("treats YAML nulls as absent", function()
      local cfg, err = load(doc("services:\n- name: s\n  host: h\n"
                                .. "  port: ~\n  tags: null\n"))
      assert.is_nil(err)
      assert.equal(80, cfg.services[1].port)
      assert.is_nil(cfg.services[1].tags)
    end)

    it("builds Kong's error table, with every error", function()
      local _, err, err_t = load(doc(
        "services:\n- name: echo\n  host: h\n  port: 70000\n  routes:\n"
        .. "  - paths: [/ok]\n  - paths: [x]\n"
        .. "consumers:\n- custom_id: c\n  foo: 1\n"))
      assert.equal(3, select(2, err:gsub("\n", "")) + 1)
      assert.equal(14, err_t.code)
      assert.equal("invalid declarative configuration", err_t.name)
      assert.same({
        services = {
          [1] = {
            port = "value should be between 0 and 65535",
            routes = {
              [2] = {
                paths = {
                  "should start with: / (fixed path) or ~/ (regex path)",
                },
              },
            },
          },
        },
        consumers = { { foo = "unknown field" } },
      }, err_t.fields)
      assert.matches("^declarative config is invalid: {", err_t.message)

      local f = err_t.flattened_errors
      assert.equal(3, #f)
      assert.equal("service", f[1].entity_type)
      assert.equal("echo", f[1].entity_name)
      assert.is_true(uuid.is_valid(f[1].entity_id))
      assert.equal(70000, f[1].entity.port)
      assert.same({ { type = "field", field = "port",
                      message = "value should be between 0 and 65535" } },
                  f[1].errors)
      assert.equal("route", f[2].entity_type)
      assert.same({ id = f[1].entity_id }, f[2].entity.service)
      assert.same({ { type = "field", field = "paths.1",
                      message = "should start with: / (fixed path) or ~/ "
                                .. "(regex path)" } }, f[2].errors)
      assert.equal("consumer", f[3].entity_type)
    end)

    it("reports entity errors as type 'entity'", function()
      local _, _, err_t = load(doc("consumers:\n- tags: [x]\n"))
      assert.same({ { type = "entity",
                      message = "at least one of these fields must be "
                                .. "non-empty: 'custom_id', 'username'" } },
                  err_t.flattened_errors[1].errors)
      assert.same({ "x" }, err_t.flattened_errors[1].entity_tags)
    end)
  end)


  describe("misuse", function()
    it("raises on bad arguments", function()
      assert.has_error(function() declarative.load_string(nil) end,
                       "text must be a string")
      assert.has_error(function() declarative.load_file(5) end,
                       "path must be a string")
      assert.has_error(function()
        declarative.load_string("", "x", { regex_check = 1 })
      end, "opts.regex_check must be a function")
    end)
  end)
end)
