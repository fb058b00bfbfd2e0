-- Services entity, as Kong's `kong/db/schema/entities/services.lua` (data
-- for sluice.schema.validate). The `url` shorthand is expanded by the
-- caller (sluice.declarative) before validation.

local validate = require "sluice.schema.validate"


local checks = validate.checks
local NULL = validate.NULL


local PROTOCOLS = {
  "grpc", "grpcs", "http", "https", "tcp", "tls", "tls_passthrough", "udp",
  "ws", "wss",
}


local TIMEOUT_MAX = 2 ^ 31 - 2


local function timeout(default)
  return { type = "integer", default = default,
           between = { 1, TIMEOUT_MAX } }
end


local function only_with_tls(field)
  return {
    conditional = {
      if_field = "protocol",
      if_match = { not_one_of = { "https", "tls" } },
      then_field = field,
      then_match = { eq = NULL },
    },
  }
end


return {
  name = "services",
  primary_key = { "id" },
  endpoint_key = "name",
  PROTOCOLS = PROTOCOLS,

  fields = {
    { id = { type = "string", uuid = true } },
    -- set by the Admin API on writes (Kong's auto timestamps); never defaulted
    -- here, so loading the same document always gives the same configuration
    { created_at = { type = "integer", timestamp = true } },
    { updated_at = { type = "integer", timestamp = true } },
    { name = { type = "string", unique = true,
               custom_validator = checks.utf8_name } },
    { retries = { type = "integer", default = 5, between = { 0, 32767 } } },
    { protocol = { type = "string", required = true, default = "http",
                   one_of = PROTOCOLS } },
    { host = { type = "string", required = true,
               custom_validator = checks.host } },
    { port = { type = "integer", required = true, default = 80,
               between = { 0, 65535 } } },
    { path = { type = "string", starts_with = "/",
               match_none = {
                 { pattern = "//", err = "must not have empty segments" },
               },
               custom_validator = checks.path } },
    { connect_timeout = timeout(60000) },
    { write_timeout = timeout(60000) },
    { read_timeout = timeout(60000) },
    { tags = { type = "set",
               elements = { type = "string", required = true,
                            custom_validator = checks.tag } } },
    { client_certificate = { type = "foreign", reference = "certificates" } },
    { tls_verify = { type = "boolean" } },
    { tls_verify_depth = { type = "integer", between = { 0, 64 } } },
    { ca_certificates = { type = "array",
                          elements = { type = "string", uuid = true } } },
    { enabled = { type = "boolean", required = true, default = true } },
  },

  entity_checks = {
    { conditional = {
        if_field = "protocol",
        if_match = { one_of = { "tcp", "tls", "tls_passthrough", "udp",
                                "grpc", "grpcs" } },
        then_field = "path",
        then_match = { eq = NULL },
    } },
    only_with_tls("client_certificate"),
    only_with_tls("tls_verify"),
    only_with_tls("tls_verify_depth"),
    only_with_tls("ca_certificates"),
  },
}
