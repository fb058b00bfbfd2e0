-- Routes entity, as Kong's `kong/db/schema/entities/routes.lua` and
-- `routes_subschemas.lua` for the traditional router (data for
-- sluice.schema.validate). The subschema is picked by the first protocol.

local validate = require "sluice.schema.validate"
local services = require "sluice.schema.entities.services"


local checks = validate.checks
local NULL = validate.NULL


local STREAM = "'tcp', 'tls', 'tls_passthrough' or 'udp'"


local function tags()
  return { type = "set",
           elements = { type = "string", required = true,
                        custom_validator = checks.tag } }
end


local function endpoints()
  return {
    type = "set",
    elements = {
      type = "record",
      fields = {
        { ip = { type = "string", custom_validator = checks.ip_or_cidr } },
        { port = { type = "integer", between = { 0, 65535 } } },
      },
      entity_checks = {
        { at_least_one_of = { "ip", "port" } },
      },
    },
  }
end


local function methods()
  return { type = "set",
           elements = { type = "string", match = "^%u+$" } }
end


local function hosts()
  return {
    type = "array",
    elements = {
      type = "string",
      match_all = {
        { pattern = "^[^*]*%*?[^*]*$",
          err = "invalid wildcard: must have at most one wildcard" },
      },
      match_any = {
        patterns = { "^%*%.", "%.%*$", "^[^*]*$" },
        err = "invalid wildcard: must be placed at leftmost or rightmost "
              .. "label",
      },
      custom_validator = checks.wildcard_host,
    },
  }
end


local function paths()
  return {
    type = "array",
    elements = {
      type = "string",
      match_any = {
        patterns = { "^/", "^~/" },
        err = "should start with: / (fixed path) or ~/ (regex path)",
      },
      match_none = {
        { pattern = "//", err = "must not have empty segments" },
      },
      custom_validator = checks.router_path,
    },
  }
end


local function headers()
  return {
    type = "map",
    keys = {
      type = "string",
      match_none = {
        { pattern = "^[Hh][Oo][Ss][Tt]$",
          err = "cannot contain 'host' header, which must be specified "
                .. "in the 'hosts' attribute" },
      },
      custom_validator = checks.header_name,
    },
    values = { type = "array", elements = { type = "string" } },
  }
end


-- `def` with eq = null and a custom error: the field is forbidden
local function none(def, err)
  def.eq = NULL
  def.err = err
  return def
end


local function at_least_one_of(tls_proto, tls_list, proto, list)
  return {
    conditional_at_least_one_of = {
      if_field = "protocols",
      if_match = { contains = tls_proto },
      then_at_least_one_of = tls_list,
      then_err = "must set one of %s when 'protocols' is '" .. tls_proto
                 .. "'",
      else_match = { contains = proto },
      else_then_at_least_one_of = list,
      else_then_err = "must set one of %s when 'protocols' is '" .. proto
                      .. "'",
    },
  }
end


local HTTP = {
  name = "http",
  fields = {
    { sources = none(endpoints(), "cannot set 'sources' when 'protocols' "
                                  .. "is 'http' or 'https'") },
    { destinations = none(endpoints(), "cannot set 'destinations' when "
                                       .. "'protocols' is 'http' or "
                                       .. "'https'") },
  },
  entity_checks = {
    at_least_one_of("https",
                    { "methods", "hosts", "headers", "paths", "snis" },
                    "http", { "methods", "hosts", "headers", "paths" }),
  },
}


local WS = {
  name = "ws",
  fields = {
    { sources = none(endpoints(), "cannot set 'sources' when 'protocols' "
                                  .. "is 'ws' or 'wss'") },
    { destinations = none(endpoints(), "cannot set 'destinations' when "
                                       .. "'protocols' is 'ws' or 'wss'") },
  },
  entity_checks = {
    at_least_one_of("wss",
                    { "methods", "hosts", "headers", "paths", "snis" },
                    "ws", { "methods", "hosts", "headers", "paths" }),
  },
}


local STREAM_SUB = {
  name = "tcp",
  fields = {
    { methods = none(methods(), "cannot set 'methods' when 'protocols' is "
                                .. STREAM) },
    { hosts = none(hosts(), "cannot set 'hosts' when 'protocols' is "
                            .. STREAM) },
    { paths = none(paths(), "cannot set 'paths' when 'protocols' is "
                            .. STREAM) },
    { headers = none(headers(), "cannot set 'headers' when 'protocols' is "
                                .. STREAM) },
  },
  entity_checks = {
    { conditional_at_least_one_of = {
        if_field = "protocols",
        if_match = { elements = { type = "string",
                                  one_of = { "tcp", "tls", "udp" } } },
        then_at_least_one_of = { "sources", "destinations", "snis" },
        then_err = "must set one of %s when 'protocols' is 'tcp', 'tls' "
                   .. "or 'udp'",
    } },
    { conditional_at_least_one_of = {
        if_field = "protocols",
        if_match = { elements = { type = "string",
                                  one_of = { "tls_passthrough" } } },
        then_at_least_one_of = { "snis" },
        then_err = "must set snis when 'protocols' is 'tls_passthrough'",
    } },
  },
}


local GRPC = {
  name = "grpc",
  fields = {
    { strip_path = { type = "boolean", required = true, default = false,
                     ne = true, err = "cannot set 'strip_path' when "
                                      .. "'protocols' is 'grpc' or "
                                      .. "'grpcs'" } },
    { methods = none(methods(), "cannot set 'methods' when 'protocols' is "
                                .. "'grpc' or 'grpcs'") },
    { sources = none(endpoints(), "cannot set 'sources' when 'protocols' "
                                  .. "is 'grpc' or 'grpcs'") },
    { destinations = none(endpoints(), "cannot set 'destinations' when "
                                       .. "'protocols' is 'grpc' or "
                                       .. "'grpcs'") },
  },
  entity_checks = {
    at_least_one_of("grpcs", { "hosts", "headers", "paths", "snis" },
                    "grpc", { "hosts", "headers", "paths" }),
  },
}


return {
  name = "routes",
  primary_key = { "id" },
  endpoint_key = "name",
  subschema_key = "protocols",

  fields = {
    { id = { type = "string", uuid = true } },
    -- set by the Admin API on writes (Kong's auto timestamps); never defaulted
    -- here, so loading the same document always gives the same configuration
    { created_at = { type = "integer", timestamp = true } },
    { updated_at = { type = "integer", timestamp = true } },
    { name = { type = "string", unique = true,
               custom_validator = checks.utf8_name } },
    { protocols = { type = "set", len_min = 1, required = true,
                    default = { "http", "https" },
                    elements = { type = "string",
                                 one_of = services.PROTOCOLS },
                    mutually_exclusive_subsets = {
                      { "http", "https" },
                      { "tcp", "tls", "udp" },
                      { "tls_passthrough" },
                      { "grpc", "grpcs" },
                      { "ws", "wss" },
                    } } },
    { methods = methods() },
    { hosts = hosts() },
    { paths = paths() },
    { headers = headers() },
    { https_redirect_status_code = { type = "integer", required = true,
                                     default = 426,
                                     one_of = { 426, 301, 302, 307, 308 } } },
    { regex_priority = { type = "integer", default = 0 } },
    { strip_path = { type = "boolean", required = true, default = true } },
    { path_handling = { type = "string", default = "v0",
                        one_of = { "v0", "v1" } } },
    { preserve_host = { type = "boolean", required = true,
                        default = false } },
    { request_buffering = { type = "boolean", required = true,
                            default = true } },
    { response_buffering = { type = "boolean", required = true,
                             default = true } },
    { snis = { type = "set",
               elements = { type = "string",
                            custom_validator = checks.sni } } },
    { sources = endpoints() },
    { destinations = endpoints() },
    { tags = tags() },
    { service = { type = "foreign", reference = "services" } },
  },

  entity_checks = {
    { conditional = {
        if_field = "protocols",
        if_match = { elements = {
          type = "string",
          not_one_of = { "grpcs", "https", "tls", "tls_passthrough", "wss" },
        } },
        then_field = "snis",
        then_match = { len_eq = 0 },
        then_err = "'snis' can only be set when 'protocols' is 'grpcs', "
                   .. "'https', 'tls', 'tls_passthrough', or 'wss'",
    } },
  },

  subschemas = {
    http = HTTP,
    https = HTTP,
    ws = WS,
    wss = WS,
    tcp = STREAM_SUB,
    tls = STREAM_SUB,
    udp = STREAM_SUB,
    tls_passthrough = STREAM_SUB,
    grpc = GRPC,
    grpcs = GRPC,
  },
}
