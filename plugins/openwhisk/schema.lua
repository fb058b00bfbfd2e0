-- Config of openwhisk (Kong/kong-plugin-openwhisk's fields and defaults).
-- `path` is the namespace resource, e.g. /api/v1/namespaces/guest; the
-- action is invoked at <path>/actions/<action>. `action` may name a
-- packaged action as "package/action".

local typedefs = require "kong.db.schema.typedefs"


-- OpenWhisk entity names: \A([\w]|[\w][\w@ .-]*[\w@.-]+)\z, max 256 each
local function validate_action(action)
  for name in (action .. "/"):gmatch("([^/]*)/") do
    if #name == 0 or #name > 256
       or not (name:match("^[%w_]$")
               or name:match("^[%w_][%w_@ %.%-]*[%w_@%.%-]$"))
    then
      return nil, "invalid action name '" .. action .. "'"
    end
  end
  return true
end


return {
  name = "openwhisk",
  fields = {
    { protocols = typedefs.protocols_http },
    { config = {
        type = "record",
        fields = {
          { timeout = { type = "integer", default = 60000, gt = 0 } },
          { keepalive = { type = "integer", default = 60000,
                          between = { 0, 2 ^ 31 - 2 } } },
          { service_token = { type = "string", referenceable = true,
                              encrypted = true } },
          { host = typedefs.host { required = true } },
          { port = typedefs.port { required = true, default = 443 } },
          { path = { type = "string", required = true,
                     match = "^/?[^?#]*$",
                     err = "must be a path without query or fragment" } },
          { action = { type = "string", required = true,
                       custom_validator = validate_action } },
          { https = { type = "boolean", default = true } },
          { https_verify = { type = "boolean", default = false } },
          { result = { type = "boolean", default = true } },
        },
      },
    },
  },
}
