-- Consumers entity, as Kong's `kong/db/schema/entities/consumers.lua` (data
-- for sluice.schema.validate).

local validate = require "sluice.schema.validate"


local checks = validate.checks


return {
  name = "consumers",
  primary_key = { "id" },
  endpoint_key = "username",

  fields = {
    { id = { type = "string", uuid = true } },
    -- set by the Admin API on writes (Kong's auto timestamps); never defaulted
    -- here, so loading the same document always gives the same configuration
    { created_at = { type = "integer", timestamp = true } },
    { updated_at = { type = "integer", timestamp = true } },
    { username = { type = "string", unique = true } },
    { custom_id = { type = "string", unique = true } },
    { tags = { type = "set",
               elements = { type = "string", required = true,
                            custom_validator = checks.tag } } },
  },

  entity_checks = {
    { at_least_one_of = { "custom_id", "username" } },
  },
}
