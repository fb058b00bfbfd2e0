--- Kong's typedefs (`kong/db/schema/typedefs.lua`): ready-made field
-- definitions for plugin schemas. Each is callable with overrides:
-- `typedefs.port { default = 443 }` returns a new definition.
-- Certificates and keys are accepted as strings (not parsed here).

local Schema = require "kong.db.schema"
local validate = require "sluice.schema.validate"


local type = type
local ipairs = ipairs
local tonumber = tonumber
local pairs = pairs
local tostring = tostring
local loadstring = loadstring
local match = string.match
local find = string.find
local gsub = string.gsub
local sub = string.sub
local sort = table.sort


local checks = validate.checks
local NULL = validate.NULL
local define = Schema.define


local DAO_MAX_TTL = 100000000


local PROTOCOLS_WITH_SUBSYSTEM = {
  http = "http", https = "http", grpc = "http", grpcs = "http",
  tcp = "stream", tls = "stream", tls_passthrough = "stream",
  udp = "stream",
}


local PROTOCOLS, HTTP_PROTOCOLS = {}, {}
for p, s in pairs(PROTOCOLS_WITH_SUBSYSTEM) do
  PROTOCOLS[#PROTOCOLS + 1] = p
  if s == "http" then
    HTTP_PROTOCOLS[#HTTP_PROTOCOLS + 1] = p
  end
end
sort(PROTOCOLS)
sort(HTTP_PROTOCOLS)


local function validate_host(host)
  return checks.host(host)
end


local function validate_host_with_optional_port(host)
  local res, err = checks.parse_host(host)
  if not res then
    return nil, err
  end
  return true
end


local function validate_ip(ip)
  if checks.valid_ipv4(ip) or checks.valid_ipv6(ip) then
    return true
  end
  return nil, "not an ip address: " .. ip
end


local function validate_ip_or_cidr(s)
  return checks.ip_or_cidr(s)
end


local function validate_cidr_v4(s)
  local ip, bits = match(s, "^([^/]+)/(%d+)$")
  ip = ip or s
  if checks.valid_ipv4(ip) and (bits == nil or tonumber(bits) <= 32)
     and (bits ~= nil or not find(s, "/", 1, true))
  then
    return true
  end
  return nil, "invalid ipv4 cidr range: '" .. s .. "'"
end


local function validate_path(path)
  if not match(path, "^/[%w%.%-_~/%%:@!%$&'%(%)%*%+,;=]*$") then
    return nil, "invalid path: '" .. path .. "' (characters outside of the "
                .. "reserved list of RFC 3986 found)", "rfc3986"
  end
  local raw = gsub(path, "%%%x%x", "___")
  local at = find(raw, "%", 1, true)
  if at then
    return nil, "invalid url-encoded value: '" .. sub(raw, at, at + 2) .. "'",
           "percent"
  end
  return true
end


local function validate_name(name)
  if not match(name, "^[%w%.%-_~]+$") then
    return nil, "invalid value '" .. name .. "': it must only contain "
                .. "alphanumeric and '., -, _, ~' characters"
  end
  return true
end


local function validate_wildcard_host(host)
  local idx = find(host, "*", 1, true)
  if idx then
    if idx ~= 1 and idx ~= #host then
      return nil, "wildcard must be leftmost or rightmost character"
    end
    local mock, count = gsub(host, "%*", "wildcard")
    if count > 1 then
      return nil, "only one wildcard must be specified"
    end
    host = mock
  end
  return checks.sni(host)
end


local function validate_url(url)
  local scheme, rest = match(url, "^([%a][%w%+%-%.]*)://(.*)$")
  if not scheme then
    if not find(url, "://", 1, true) and match(url, "^[^/]+") then
      return nil, "missing scheme in url"
    end
    return nil, "missing host in url"
  end
  local host = match(rest, "^[^/?#]*")
  host = gsub(host, "^.*@", "")
  if host == "" or host:match("^:") then
    return nil, "missing host in url"
  end
  return true
end


local function validate_lua_code(code)
  local fn, err = loadstring(code, "=schema")
  if not fn then
    return nil, tostring(err)
  end
  return true
end


local typedefs = {}


typedefs.http_method = define {
  type = "string",
  match = "^%u+$",
}

typedefs.protocol = define {
  type = "string",
  one_of = PROTOCOLS,
}

typedefs.host = define {
  type = "string",
  custom_validator = validate_host,
}

typedefs.redis_host = define {
  type = "string",
  custom_validator = validate_host,
}

typedefs.host_with_optional_port = define {
  type = "string",
  custom_validator = validate_host_with_optional_port,
}

typedefs.wildcard_host = define {
  type = "string",
  custom_validator = validate_wildcard_host,
}

typedefs.ip = define {
  type = "string",
  custom_validator = validate_ip,
}

typedefs.ip_or_cidr = define {
  type = "string",
  custom_validator = validate_ip_or_cidr,
}

typedefs.cidr_v4 = define {
  type = "string",
  custom_validator = validate_cidr_v4,
}

-- deprecated alias
typedefs.cidr = typedefs.cidr_v4

typedefs.port = define {
  type = "integer",
  between = { 0, 65535 },
}

typedefs.path = define {
  type = "string",
  starts_with = "/",
  match_none = {
    { pattern = "//", err = "must not have empty segments" },
  },
  custom_validator = validate_path,
}

typedefs.url = define {
  type = "string",
  custom_validator = validate_url,
}

typedefs.cookie_name = define {
  type = "string",
  custom_validator = function(name)
    if match(name, "^[%w!#%$%%&'%*%+%-%.%^_`|~]+$") then
      return true
    end
    return nil, "bad cookie name '" .. name .. "', allowed characters are "
                .. "A-Z, a-z, 0-9, '!', '#', '$', '%', '&', ''', '*', "
                .. "'+', '-', '.', '^', '_', '`', '|', and '~'"
  end,
}

typedefs.header_name = define {
  type = "string",
  custom_validator = checks.header_name,
}

typedefs.timeout = define {
  type = "integer",
  between = { 0, 2 ^ 31 - 2 },
}

typedefs.uuid = define {
  type = "string",
  uuid = true,
  auto = true,
}

typedefs.auto_timestamp_s = define {
  type = "integer",
  timestamp = true,
  auto = true,
}

typedefs.auto_timestamp_ms = define {
  type = "number",
  timestamp = true,
  auto = true,
}

typedefs.no_route = define {
  type = "foreign",
  reference = "routes",
  eq = NULL,
}

typedefs.no_service = define {
  type = "foreign",
  reference = "services",
  eq = NULL,
}

typedefs.no_consumer = define {
  type = "foreign",
  reference = "consumers",
  eq = NULL,
}

typedefs.name = define {
  type = "string",
  unique = true,
  custom_validator = validate_name,
}

typedefs.utf8_name = define {
  type = "string",
  unique = true,
  custom_validator = checks.utf8_name,
}

typedefs.sni = define {
  type = "string",
  custom_validator = checks.sni,
}

typedefs.redis_server_name = define {
  type = "string",
  custom_validator = checks.sni,
}

typedefs.certificate = define {
  type = "string",
}

typedefs.key = define {
  type = "string",
}

typedefs.tag = define {
  type = "string",
  required = true,
  custom_validator = checks.tag,
}

typedefs.tags = define {
  type = "set",
  elements = typedefs.tag,
}

typedefs.protocols = define {
  type = "set",
  required = true,
  default = HTTP_PROTOCOLS,
  elements = typedefs.protocol,
}

typedefs.protocols_http = define {
  type = "set",
  required = true,
  default = HTTP_PROTOCOLS,
  elements = { type = "string", one_of = HTTP_PROTOCOLS },
}

local function endpoints()
  return {
    type = "set",
    elements = {
      type = "record",
      fields = {
        { ip = typedefs.ip_or_cidr },
        { port = typedefs.port },
      },
      entity_checks = {
        { at_least_one_of = { "ip", "port" } },
      },
    },
  }
end

typedefs.sources = define(endpoints())
typedefs.no_sources = define(typedefs.sources { eq = NULL })
typedefs.destinations = define(endpoints())
typedefs.no_destinations = define(typedefs.destinations { eq = NULL })

typedefs.methods = define {
  type = "set",
  elements = typedefs.http_method,
}
typedefs.no_methods = define(typedefs.methods { eq = NULL })

typedefs.hosts = define {
  type = "array",
  elements = {
    type = "string",
    match_all = {
      { pattern = "^[^*]*%*?[^*]*$",
        err = "invalid wildcard: must have at most one wildcard" },
    },
    match_any = {
      patterns = { "^%*%.", "%.%*$", "^[^*]*$" },
      err = "invalid wildcard: must be placed at leftmost or rightmost label",
    },
    custom_validator = checks.wildcard_host,
  },
}
typedefs.no_hosts = define(typedefs.hosts { eq = NULL })

typedefs.router_path = define {
  type = "string",
  match_any = {
    patterns = { "^/", "^~/" },
    err = "should start with: / (fixed path) or ~/ (regex path)",
  },
  match_none = {
    { pattern = "//", err = "must not have empty segments" },
  },
  custom_validator = checks.router_path,
}

typedefs.router_paths = define {
  type = "array",
  elements = typedefs.router_path,
}
typedefs.no_paths = define(typedefs.router_paths { eq = NULL })

typedefs.headers = define {
  type = "map",
  keys = typedefs.header_name,
  values = {
    type = "array",
    elements = { type = "string" },
  },
}
typedefs.no_headers = define(typedefs.headers { eq = NULL })

typedefs.semantic_version = define {
  type = "string",
  match_any = {
    patterns = { "^%d+[%.%d]*$", "^%d+[%.%d]*%-?.*$" },
    err = "invalid version number: must be in format of X.Y.Z",
  },
  match_none = {
    { pattern = "%.%.", err = "must not have empty version segments" },
  },
}

typedefs.pem = define {
  type = "record",
  required = false,
  fields = {
    { private_key = { type = "string", required = false,
                      referenceable = true, encrypted = true } },
    { public_key = { type = "string", required = false,
                     referenceable = true } },
  },
  entity_checks = {
    { at_least_one_of = { "private_key", "public_key" } },
  },
}

local JWK_FIELDS = {}
for _, name in ipairs({ "issuer", "kty", "use", "key_ops", "alg", "kid",
                        "x5u", "x5c", "x5t", "x5t#S256", "k", "x", "y",
                        "crv", "n", "e", "d", "p", "q", "dp", "dq", "qi",
                        "oth", "r", "t" }) do
  local def = { type = "string", required = name == "kid" }
  if name == "key_ops" or name == "x5c" then
    def = { type = "array", required = false,
            elements = { type = "string", required = false } }
  end
  JWK_FIELDS[#JWK_FIELDS + 1] = { [name] = def }
end

typedefs.jwk = define {
  type = "record",
  required = false,
  fields = JWK_FIELDS,
}

typedefs.queue = define {
  type = "record",
  fields = {
    { max_batch_size = { type = "integer", default = 1,
                         between = { 1, 1000000 } } },
    { max_coalescing_delay = { type = "number", default = 1,
                               between = { 0, 3600 } } },
    { max_entries = { type = "integer", default = 10000,
                      between = { 1, 1000000 } } },
    { max_bytes = { type = "integer" } },
    { max_retry_time = { type = "number", default = 60 } },
    { initial_retry_delay = { type = "number", default = 0.01,
                              between = { 0.001, 1000000 } } },
    { max_retry_delay = { type = "number", default = 60,
                          between = { 0.001, 1000000 } } },
    { concurrency_limit = { type = "integer", default = 1,
                            one_of = { -1, 1 } } },
  },
}

typedefs.lua_code = define {
  type = "map",
  keys = { type = "string", len_min = 1 },
  values = { type = "string", len_min = 1,
             custom_validator = validate_lua_code },
}

typedefs.ttl = define {
  type = "number",
  between = { 0, DAO_MAX_TTL },
}


setmetatable(typedefs, {
  __index = function(_, k)
    error("schema typedef error: definition " .. tostring(k)
          .. " does not exist", 2)
  end,
})


return typedefs
