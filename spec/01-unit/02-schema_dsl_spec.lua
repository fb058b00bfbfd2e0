-- Kong's schema DSL in sluice.schema.validate: types, validators, entity
-- checks, defaults and shorthands, with Kong's messages verbatim.

local validate = require "sluice.schema.validate"
local typedefs = require "kong.db.schema.typedefs"
local Schema = require "kong.db.schema"


local NULL = validate.NULL


-- validates `value` as field `x` of a one-field schema; returns the error
local function field_err(def, value)
  local _, errs = validate.validate_record({ fields = { { x = def } } },
                                           { x = value })
  return errs and errs.x
end


local function record(fields, extra)
  local s = { fields = fields }
  for k, v in pairs(extra or {}) do
    s[k] = v
  end
  return s
end


describe("schema DSL: types", function()
  local CASES = {
    -- def, value, expected error (nil = valid)
    { { type = "string" }, "a", nil },
    { { type = "string" }, 1, "expected a string" },
    { { type = "string" }, "", "length must be at least 1" },
    { { type = "string", len_min = 0 }, "", nil },
    { { type = "number" }, 1.5, nil },
    { { type = "number" }, "1", "expected a number" },
    { { type = "integer" }, 2, nil },
    { { type = "integer" }, 2.5, "expected an integer" },
    { { type = "integer" }, math.huge, "expected an integer" },
    { { type = "boolean" }, false, nil },
    { { type = "boolean" }, "true", "expected a boolean" },
    { { type = "array", elements = { type = "string" } }, { "a" }, nil },
    { { type = "array", elements = { type = "string" } }, { x = 1 },
      "expected an array" },
    { { type = "array", elements = { type = "string" } }, { "a", 2 },
      { [2] = "expected a string" } },
    { { type = "array", elements = { type = "string" } }, { "a", NULL },
      { [2] = "required field missing" } },
    { { type = "set", elements = { type = "integer" } }, "x",
      "expected a set" },
    { { type = "map", keys = { type = "string" },
        values = { type = "integer" } }, { a = 1 }, nil },
    { { type = "map", keys = { type = "string" },
        values = { type = "integer" } }, "x", "expected a map" },
    -- maps report their first error as the map's error, as Kong
    { { type = "map", keys = { type = "string" },
        values = { type = "integer" } }, { a = "b" }, "expected an integer" },
    { { type = "record", fields = { { a = { type = "integer" } } } },
      { a = "x" }, { a = "expected an integer" } },
    { { type = "record", fields = { { a = { type = "integer" } } } },
      5, "expected a record" },
    { { type = "record", fields = { { a = { type = "integer" } } } },
      { b = 1 }, { b = "unknown field" } },
    { { type = "function" }, print, nil },
    { { type = "function" }, "print", "expected a function" },
    { { type = "foreign", reference = "services" },
      { id = "9748f662-7711-4a90-8186-dc02f10eb0f5" }, nil },
    { { type = "foreign", reference = "services" }, { id = "nope" },
      { id = "expected a valid UUID" } },
    { { type = "json", json_schema = { inline = {} } }, { any = "thing" },
      nil },
    { { type = "any" }, 42, nil },
    { { type = "nope" }, 42, "invalid type: nope" },
  }

  for i, c in ipairs(CASES) do
    it(("#%d %s %s"):format(i, c[1].type, tostring(c[3])), function()
      assert.same(c[3], field_err(c[1], c[2]))
    end)
  end
end)


describe("schema DSL: validators", function()
  local CASES = {
    { { type = "string", eq = "a" }, "b", "value must be a" },
    { { type = "string", eq = "a" }, "a", nil },
    { { type = "string", ne = "a" }, "a", "value must not be a" },
    { { type = "integer", gt = 5 }, 5, "value must be greater than 5" },
    { { type = "integer", between = { 1, 10 } }, 11,
      "value should be between 1 and 10" },
    { { type = "integer", between = { 1, 10 } }, 10, nil },
    { { type = "string", one_of = { "a", "b" } }, "c",
      "expected one of: a, b" },
    { { type = "string", not_one_of = { "a", "b" } }, "a",
      "must not be one of: a, b" },
    { { type = "string", len_eq = 2 }, "abc", "length must be 2" },
    { { type = "string", len_min = 2 }, "a", "length must be at least 2" },
    { { type = "string", len_max = 2 }, "abc", "length must be at most 2" },
    { { type = "array", elements = { type = "string" }, len_min = 1 }, {},
      "length must be at least 1" },
    { { type = "string", match = "^%d+$" }, "a1", "invalid value: a1" },
    { { type = "string", not_match = "%s" }, "a b", "invalid value: a b" },
    { { type = "string", match_all = {
        { pattern = "^a", err = "must start with a" },
        { pattern = "z$", err = "must end with z" } } }, "abc",
      "must end with z" },
    { { type = "string", match_all = { { pattern = "^a" } } }, "b",
      "invalid value: b" },
    { { type = "string", match_none = {
        { pattern = "//", err = "must not have empty segments" } } },
      "/a//b", "must not have empty segments" },
    { { type = "string", match_any = { patterns = { "^a", "^b" },
                                       err = "a or b first" } }, "c",
      "a or b first" },
    { { type = "string", match_any = { patterns = { "^a", "^b" } } }, "b",
      nil },
    { { type = "string", starts_with = "/" }, "x", "should start with: /" },
    { { type = "array", elements = { type = "string" }, contains = "a" },
      { "b" }, "expected to contain: a" },
    { { type = "string", uuid = true }, "x", "expected a valid UUID" },
    { { type = "integer", timestamp = true }, -1,
      "expected a valid timestamp" },
    { { type = "string", custom_validator = function(v)
          return v == "ok" or nil, "not ok: " .. v
        end }, "ko", "not ok: ko" },
    { { type = "string", custom_validator = function() return nil end },
      "ko", "failed validating: ko" },
    { { type = "set", elements = { type = "string" },
        mutually_exclusive_subsets = { { "a", "b" }, { "c" } } },
      { "a", "c" }, "these sets are mutually exclusive: ('a', 'b'), ('c')" },
    { { type = "set", elements = { type = "string" },
        mutually_exclusive_subsets = { { "a", "b" }, { "c" } } },
      { "a", "b" }, nil },
    -- `err` replaces the validator's message
    { { type = "integer", between = { 1, 2 }, err = "custom" }, 3,
      "custom" },
    -- order: eq runs before one_of, len_min before match
    { { type = "string", eq = "a", one_of = { "b" } }, "c",
      "value must be a" },
    { { type = "string", len_min = 3, match = "^%d+$" }, "x",
      "length must be at least 3" },
    -- vault references skip the validators of referenceable strings
    { { type = "string", referenceable = true, match = "^%d+$" },
      "{vault://env/secret}", nil },
    { { type = "string", match = "^%d+$" }, "{vault://env/secret}",
      "invalid value: {vault://env/secret}" },
  }

  for i, c in ipairs(CASES) do
    it(("#%d %s"):format(i, tostring(c[3])), function()
      assert.same(c[3], field_err(c[1], c[2]))
    end)
  end

  it("checks is_regex with ctx.regex_check", function()
    local schema = { fields = { { re = { type = "string",
                                         is_regex = true } } } }
    local ctx = { regex_check = function(re)
      if re:find("(", 1, true) and not re:find(")", 1, true) then
        return nil, "missing )"
      end
      return true
    end }
    local _, errs = validate.validate_record(schema, { re = "a(b" }, ctx)
    assert.same({ re = "not a valid regex: a(b" }, errs)
    _, errs = validate.validate_record(schema, { re = "a(b)" }, ctx)
    assert.is_nil(errs)
  end)
end)


describe("schema DSL: presence, nulls and defaults", function()
  local schema = record({
    { r = { type = "string", required = true } },
    { d = { type = "integer", default = 7 } },
    { o = { type = "string" } },
    { n = { type = "string", eq = NULL } },
    { nn = { type = "string", ne = NULL } },
    { arr = { type = "array", elements = { type = "string" },
              default = { "x" } } },
    { set = { type = "set", elements = { type = "string" } } },
    { rec = { type = "record", required = true, fields = {
      { a = { type = "integer", default = 1 } },
      { inner = { type = "record", required = true, fields = {
        { b = { type = "boolean", default = true } },
      } } },
    } } },
    { opt = { type = "record", fields = {
      { c = { type = "integer", default = 3 } },
    } } },
  })

  it("fills defaults, records recursively, drops nulls", function()
    local out, errs = validate.validate_record(schema, {
      r = "v", nn = "x", set = { "a", "b", "a" },
    })
    assert.is_nil(errs)
    assert.same({
      r = "v", d = 7, nn = "x", arr = { "x" }, set = { "a", "b" },
      rec = { a = 1, inner = { b = true } },
    }, out)
  end)

  it("keeps a given record and fills its missing fields", function()
    local out = validate.validate_record(schema, {
      r = "v", nn = "x", rec = { a = 5 }, opt = {},
    })
    assert.same({ a = 5, inner = { b = true } }, out.rec)
    assert.same({ c = 3 }, out.opt)
  end)

  it("reports required, eq/ne null and unknown fields", function()
    local _, errs = validate.validate_record(schema, {
      r = NULL, n = "set", nn = NULL, rec = NULL, zz = 1,
    })
    assert.same({
      r = "required field missing",
      n = "value must be null",
      nn = "value must not be null",
      rec = "required field missing",
      zz = "unknown field",
    }, errs)
  end)

  it("process_auto_fields turns absent optional fields into null", function()
    local data = validate.process_auto_fields(schema, { r = "v" })
    assert.equal(NULL, data.o)
    assert.equal(NULL, data.opt)
    assert.equal(7, data.d)
  end)
end)


describe("schema DSL: entity checks", function()
  local function check(checks, input, fields)
    local s = record(fields or {
      { a = { type = "string" } },
      { b = { type = "string" } },
      { c = { type = "integer" } },
      { sub = { type = "record", required = true, fields = {
        { x = { type = "string" } },
      } } },
    }, { entity_checks = checks })
    local _, errs = validate.validate_record(s, input)
    return errs
  end

  local CASES = {
    { "at_least_one_of fails", { { at_least_one_of = { "a", "b" } } }, {},
      { ["@entity"] = {
        "at least one of these fields must be non-empty: 'a', 'b'" } } },
    { "at_least_one_of passes", { { at_least_one_of = { "a", "b" } } },
      { b = "x" }, nil },
    { "at_least_one_of on a nested field",
      { { at_least_one_of = { "sub.x" } } }, {},
      { ["@entity"] = {
        "at least one of these fields must be non-empty: 'sub.x'" } } },
    { "only_one_of with both", { { only_one_of = { "a", "b" } } },
      { a = "x", b = "y" },
      { ["@entity"] = {
        "exactly one of these fields must be non-empty: 'a', 'b'" } } },
    { "only_one_of with none", { { only_one_of = { "a", "b" } } }, {},
      { ["@entity"] = {
        "exactly one of these fields must be non-empty: 'a', 'b'" } } },
    { "only_one_of with one", { { only_one_of = { "a", "b" } } },
      { a = "x" }, nil },
    { "distinct", { { distinct = { "a", "b" } } }, { a = "x", b = "x" },
      { ["@entity"] = {
        "values of these fields must be distinct: 'a', 'b'" } } },
    { "mutually_required", { { mutually_required = { "a", "b" } } },
      { a = "x" },
      { ["@entity"] = {
        "all or none of these fields must be set: 'a', 'b'" } } },
    { "mutually_required none", { { mutually_required = { "a", "b" } } },
      {}, nil },
    { "mutually_exclusive", { { mutually_exclusive = { "a", "b" } } },
      { a = "x", b = "y" },
      { ["@entity"] = {
        "only one or none of these fields must be set: 'a', 'b'" } } },
    { "mutually_exclusive_sets",
      { { mutually_exclusive_sets = { set1 = { "a" }, set2 = { "b", "c" } } } },
      { a = "x", c = 1 },
      { ["@entity"] = {
        "these sets are mutually exclusive: ('a'), ('c')" } } },
    { "conditional then_match",
      { { conditional = { if_field = "a", if_match = { eq = "on" },
                          then_field = "c", then_match = { gt = 5 } } } },
      { a = "on", c = 1 },
      { c = "value must be greater than 5", ["@entity"] = {
        "failed conditional validation given value of field 'a'" } } },
    { "conditional required",
      { { conditional = { if_field = "a", if_match = { eq = "on" },
                          then_field = "b",
                          then_match = { required = true } } } },
      { a = "on" },
      { b = "required field missing", ["@entity"] = {
        "failed conditional validation given value of field 'a'" } } },
    { "conditional then_err",
      { { conditional = { if_field = "a", if_match = { eq = "on" },
                          then_field = "c", then_match = { eq = 1 },
                          then_err = "c must be 1 when %s is on" } } },
      { a = "on", c = 2 },
      { c = "value must be 1", ["@entity"] = { "c must be 1 when a is on" } } },
    { "conditional not triggered",
      { { conditional = { if_field = "a", if_match = { eq = "on" },
                          then_field = "c", then_match = { eq = 1 } } } },
      { a = "off", c = 2 }, nil },
    { "conditional_at_least_one_of",
      { { conditional_at_least_one_of = {
          if_field = "a", if_match = { eq = "on" },
          then_at_least_one_of = { "b", "c" },
          else_match = { eq = "off" },
          else_then_at_least_one_of = { "c" },
          else_then_err = "need %s when off" } } },
      { a = "off" },
      { ["@entity"] = { "need 'c' when off" } } },
    { "conditional_at_least_one_of then",
      { { conditional_at_least_one_of = {
          if_field = "a", if_match = { eq = "on" },
          then_at_least_one_of = { "b", "c" } } } },
      { a = "on" },
      { ["@entity"] = {
        "at least one of these fields must be non-empty: 'b', 'c'" } } },
    { "custom_entity_check",
      { { custom_entity_check = { field_sources = { "a", "b" },
          fn = function(e)
            if e.a == e.b then
              return nil, "a and b must differ"
            end
            return true
          end } } },
      { a = "x", b = "x" }, { ["@entity"] = { "a and b must differ" } } },
    { "custom_entity_check skipped on invalid fields",
      { { custom_entity_check = { field_sources = { "c" },
          fn = function() return nil, "ran" end } } },
      { c = "nope" }, { c = "expected an integer" } },
    { "custom_entity_check without message",
      { { custom_entity_check = { field_sources = { "a" },
          fn = function() return nil end } } },
      { a = "x" }, "ENTITY_CHECK" },
  }

  for _, c in ipairs(CASES) do
    it(c[1], function()
      local errs = check(c[2], c[3])
      if c[4] == "ENTITY_CHECK" then
        assert.matches("^failed entity check: custom_entity_check%(",
                       errs["@entity"][1])
      else
        assert.same(c[4], errs)
      end
    end)
  end

  it("runs the checks of nested records, reported at their level", function()
    local s = record({
      { conf = { type = "record", required = true, fields = {
        { a = { type = "string" } },
        { b = { type = "string" } },
      }, entity_checks = { { at_least_one_of = { "a", "b" } } } } },
    })
    local _, errs = validate.validate_record(s, { conf = {} })
    assert.same({ conf = { ["@entity"] = {
      "at least one of these fields must be non-empty: 'a', 'b'" } } }, errs)
  end)

  it("skips checks on vault references of referenceable fields", function()
    local s = record({
      { a = { type = "string", referenceable = true } },
      { b = { type = "string" } },
    }, { entity_checks = { { distinct = { "a", "b" } } } })
    local _, errs = validate.validate_record(s, { a = "{vault://env/x}",
                                                  b = "{vault://env/x}" })
    assert.is_nil(errs)
  end)
end)


describe("schema DSL: shorthand_fields", function()
  local s = record({
    { host = { type = "string" } },
    { port = { type = "integer", default = 80 } },
    { conf = { type = "record", required = true, fields = {
      { redis = { type = "record", required = true, fields = {
        { host = { type = "string" } },
        { port = { type = "integer", default = 6379 } },
      } } },
    }, shorthand_fields = {
      { redis_host = { type = "string",
        deprecation = { message = "use redis.host",
                        removal_in_version = "4.0",
                        replaced_with = { { path = { "redis", "host" } } } },
        func = function(v) return { redis = { host = v } } end } },
    } } },
  }, {
    shorthand_fields = {
      { address = { type = "string", func = function(v)
          local h, p = v:match("^(.-):(%d+)$")
          return { host = h, port = tonumber(p) }
        end } },
    },
  })

  it("expands shorthands before validation, in records too", function()
    local out, errs = validate.validate_record(s, {
      address = "example.com:8080",
      conf = { redis_host = "r.local" },
    })
    assert.is_nil(errs)
    assert.same({ host = "example.com", port = 8080,
                  conf = { redis = { host = "r.local", port = 6379 } } }, out)
  end)

  it("validates shorthand values with Kong's messages", function()
    local _, errs = validate.validate_record(s, { address = 5 })
    assert.same({ address = "expected a string" }, errs)
  end)

  it("lets the new field win over a deprecated shorthand", function()
    local out, errs = validate.validate_record(s, {
      conf = { redis_host = "same", redis = { host = "same" } },
    })
    assert.is_nil(errs)
    assert.equal("same", out.conf.redis.host)
    _, errs = validate.validate_record(s, {
      conf = { redis_host = "a", redis = { host = "b" } },
    })
    assert.same({ conf = { redis_host = "both deprecated and new field are "
      .. "used but their values mismatch: redis_host = a vs redis.host = b" } },
      errs)
  end)
end)


describe("schema DSL: transformations", function()
  it("requires input and needs together, then runs on_write", function()
    local s = record({
      { a = { type = "string" } },
      { b = { type = "string" } },
      { ab = { type = "string" } },
    }, { transformations = { {
      input = { "a" }, needs = { "b" },
      on_write = function(a, b) return { ab = a .. b } end,
    } } })
    local _, errs = validate.validate_record(s, { a = "x" })
    assert.same({ ["@entity"] = {
      "all or none of these fields must be set: 'a', 'b'" } }, errs)
    local out = validate.validate_record(s, { a = "x", b = "y" })
    assert.same({ a = "x", b = "y", ab = "xy" }, validate.transform(s, out))
  end)
end)


describe("kong.db.schema.typedefs", function()
  it("returns new definitions when called with overrides", function()
    local p = typedefs.port { default = 443 }
    assert.equal(443, p.default)
    assert.same({ 0, 65535 }, p.between)
    assert.is_nil(typedefs.port.default)
  end)

  it("raises on unknown typedefs", function()
    assert.has_error(function() return typedefs.nope end,
                     "schema typedef error: definition nope does not exist")
  end)

  local CASES = {
    { "port", 70000, "value should be between 0 and 65535" },
    { "port", 8080, nil },
    { "host", "example.com", nil },
    { "host", "example.com:80", "must not have a port" },
    { "host_with_optional_port", "example.com:80", nil },
    { "ip", "10.0.0.1", nil },
    { "ip", "example.com", "not an ip address: example.com" },
    { "ip_or_cidr", "10.0.0.0/8", nil },
    { "ip_or_cidr", "10.0.0.0/99", "invalid ip or cidr range: '10.0.0.0/99'" },
    { "cidr_v4", "10.0.0.0/8", nil },
    { "cidr_v4", "::1/64", "invalid ipv4 cidr range: '::1/64'" },
    { "path", "/a/b", nil },
    { "path", "a", "should start with: /" },
    { "path", "/a//b", "must not have empty segments" },
    { "url", "http://example.com/x", nil },
    { "url", "example.com", "missing scheme in url" },
    { "uuid", "9748f662-7711-4a90-8186-dc02f10eb0f5", nil },
    { "uuid", "x", "expected a valid UUID" },
    { "name", "a b", "invalid value 'a b': it must only contain "
                     .. "alphanumeric and '., -, _, ~' characters" },
    { "utf8_name", "caf\195\169", nil },
    { "tag", "a,b", "invalid tag 'a,b': expected printable ascii (except "
                    .. "`,` and `/`) or valid utf-8 sequences" },
    { "timeout", -1, "value should be between 0 and 2147483646" },
    { "protocol", "ftp", "expected one of: grpc, grpcs, http, https, tcp, "
                         .. "tls, tls_passthrough, udp" },
    { "protocols_http", { "tcp" },
      { "expected one of: grpc, grpcs, http, https" } },
    { "http_method", "get", "invalid value: get" },
    { "methods", { "GET", "post" }, { [2] = "invalid value: post" } },
    { "header_name", "X-Ok", nil },
    { "header_name", "bad header", "bad header name 'bad header', allowed "
                                   .. "characters are A-Z, a-z, 0-9, '_', "
                                   .. "and '-'" },
    { "headers", { Host = { "x" } }, nil },
    { "hosts", { "*.example.com" }, nil },
    { "hosts", { "a.*.com" }, { "invalid wildcard: must be placed at "
                                .. "leftmost or rightmost label" } },
    { "wildcard_host", "*.example.com", nil },
    { "sni", "10.0.0.1", "must not be an IP" },
    { "semantic_version", "1.2.3", nil },
    { "semantic_version", "1..2", "must not have empty version segments" },
    { "semantic_version", "v1", "invalid version number: must be in format "
                                .. "of X.Y.Z" },
    { "router_path", "x", "should start with: / (fixed path) or ~/ (regex "
                          .. "path)" },
    { "ttl", 100000001, "value should be between 0 and 100000000" },
    { "lua_code", { f = "return 1" }, nil },
    { "lua_code", { f = "return (" },
      "schema:1: unexpected symbol near '<eof>'" },
    { "certificate", "-----BEGIN CERTIFICATE-----", nil },
    { "pem", {}, { ["@entity"] = { "at least one of these fields must be "
                                   .. "non-empty: 'private_key', "
                                   .. "'public_key'" } } },
    { "no_consumer", { id = "9748f662-7711-4a90-8186-dc02f10eb0f5" },
      "value must be null" },
  }

  for _, c in ipairs(CASES) do
    it(("%s %s"):format(c[1], tostring(c[3])), function()
      assert.same(c[3], field_err(typedefs[c[1]], c[2]))
    end)
  end

  it("fills the queue and protocols defaults", function()
    local out = validate.validate_record(record({
      { queue = typedefs.queue { required = true } },
      { protocols = typedefs.protocols },
    }), {})
    assert.same({ "grpc", "grpcs", "http", "https" }, out.protocols)
    assert.equal(1, out.queue.max_batch_size)
    assert.equal(10000, out.queue.max_entries)
  end)
end)


describe("kong.db.schema", function()
  it("Schema.new validates like Kong's Schema objects", function()
    local s = assert(Schema.new({ fields = {
      { a = { type = "integer", default = 2 } },
    } }))
    assert.equal("integer", s.fields.a.type)
    local data = s:process_auto_fields({})
    assert.equal(2, data.a)
    assert.is_true(s:validate(data))
    local ok, errs = s:validate({ a = "x" })
    assert.is_nil(ok)
    assert.same({ a = "expected an integer" }, errs)
    assert.equal("Validation error: a: expected an integer",
                 s:errors_to_string(errs))
  end)

  it("Schema.new refuses definitions without fields", function()
    assert.same({ nil, "error in schema definition: no 'fields' table" },
                { Schema.new({}) })
  end)

  it("Schema.define makes a callable typedef", function()
    local d = Schema.define { type = "string", len_min = 3 }
    assert.same({ type = "string", len_min = 5 }, d { len_min = 5 })
  end)
end)
