-- Config of azure-functions: Kong's fields and defaults, plus two Sluice
-- extensions: `port` (Kong always uses 443 or 80 by `https`) and
-- `forward_path` (the request path suffix after the route's match is
-- appended to the function path; false gives Kong >= 3.6's fixed path).

local typedefs = require "kong.db.schema.typedefs"


return {
  name = "azure-functions",
  fields = {
    { protocols = typedefs.protocols },
    { config = {
        type = "record",
        fields = {
          -- connection basics
          { timeout = { type = "number", default = 600000, gt = 0 } },
          { keepalive = { type = "number", default = 60000 } },
          { https = { type = "boolean", default = true } },
          { https_verify = { type = "boolean", default = false } },
          -- authorization
          { apikey = { type = "string", referenceable = true,
                       encrypted = true } },
          { clientid = { type = "string", referenceable = true,
                         encrypted = true } },
          -- target/location
          { appname = { type = "string", required = true } },
          { hostdomain = { type = "string", required = true,
                           default = "azurewebsites.net" } },
          { routeprefix = { type = "string", default = "api" } },
          { functionname = { type = "string", required = true } },
          -- Sluice extensions
          { port = typedefs.port },
          { forward_path = { type = "boolean", default = true } },
        },
        entity_checks = {
          { custom_entity_check = {
              field_sources = { "appname", "hostdomain" },
              fn = function(entity)
                local host = entity.appname .. "." .. entity.hostdomain
                local ok, err = typedefs.host.custom_validator(host)
                if not ok then
                  return nil, "appname.hostdomain: " .. tostring(err)
                end
                return true
              end,
            },
          },
        },
      },
    },
  },
}
