-- Schema factory shared by pre-function and post-function, as Kong's
-- `kong/plugins/pre-function/_schema.lua`:
--
--   return require "kong.plugins.pre-function._schema"(plugin_name)
--
-- config.<phase> for certificate, rewrite, access, header_filter,
-- body_filter and log: an array of Lua chunks, default {}; at least one
-- phase must be non-empty. A chunk is only compiled here, in text mode, to
-- report syntax errors (`error parsing <plugin>: [string "..."]:1: ...`):
-- it is never run at validation time (Kong/kong#5110), so a chunk that
-- raises or returns a non-function is accepted. `untrusted_lua` is not
-- consulted: with `off` the config is accepted and fails when it runs.

return function(plugin_name)
  local typedefs = require "kong.db.schema.typedefs"


  local load = load
  local type = type


  local function validate_function(code)
    if type(code) ~= "string" then
      return nil, "expected a string"
    end
    local _, err = load(code, nil, "t")
    if err then
      return nil, "error parsing " .. plugin_name .. ": " .. err
    end
    return true
  end


  local function phase_functions()
    return {
      type = "array",
      required = true,
      default = {},
      description = "Lua chunks run one after the other in this phase; " ..
                    "compiled and cached on first use.",
      elements = {
        type = "string",
        required = false,
        custom_validator = validate_function,
      },
    }
  end


  return {
    name = plugin_name,
    fields = {
      { consumer = typedefs.no_consumer },
      { protocols = typedefs.protocols },
      { config = {
          type = "record",
          fields = {
            { certificate = phase_functions() },
            { rewrite = phase_functions() },
            { access = phase_functions() },
            { header_filter = phase_functions() },
            { body_filter = phase_functions() },
            { log = phase_functions() },
          },
        },
      },
    },
    entity_checks = {
      { at_least_one_of = {
          "config.certificate",
          "config.rewrite",
          "config.access",
          "config.header_filter",
          "config.body_filter",
          "config.log",
        },
      },
    },
  }
end
