-- Plugins entity, as Kong's `kong/db/schema/entities/plugins.lua` (data for
-- sluice.schema.validate). `config` is kept as given here: plugin config
-- schemas are checked through the declarative loader's `plugin_check` hook.

local validate = require "sluice.schema.validate"
local services = require "sluice.schema.entities.services"


local checks = validate.checks
local type = type


local HTTP_PROTOCOLS = { "grpc", "grpcs", "http", "https" }


local function is_table(v)
  if type(v) ~= "table" then
    return nil, validate.ERRORS.RECORD
  end
  return true
end


local PHASE_LIST = {
  type = "map",
  keys = { type = "string", one_of = { "access" } },
  values = { type = "array", elements = { type = "string" } },
}


return {
  name = "plugins",
  primary_key = { "id" },
  cache_key = { "name", "route", "service", "consumer" },
  HTTP_PROTOCOLS = HTTP_PROTOCOLS,

  fields = {
    { id = { type = "string", uuid = true } },
    -- set by the Admin API on writes (Kong's auto timestamps); never defaulted
    -- here, so loading the same document always gives the same configuration
    { created_at = { type = "integer", timestamp = true } },
    { updated_at = { type = "integer", timestamp = true } },
    { name = { type = "string", required = true } },
    { instance_name = { type = "string", unique = true,
                        custom_validator = checks.utf8_name } },
    { route = { type = "foreign", reference = "routes" } },
    { service = { type = "foreign", reference = "services" } },
    { consumer = { type = "foreign", reference = "consumers" } },
    { config = { type = "any", default = {}, custom_validator = is_table } },
    { protocols = { type = "set", required = true, default = HTTP_PROTOCOLS,
                    elements = { type = "string",
                                 one_of = services.PROTOCOLS } } },
    { enabled = { type = "boolean", required = true, default = true } },
    { tags = { type = "set",
               elements = { type = "string", required = true,
                            custom_validator = checks.tag } } },
    { ordering = { type = "record",
                   fields = {
                     { before = PHASE_LIST },
                     { after = PHASE_LIST },
                   } } },
  },
}
