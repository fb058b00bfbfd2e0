-- Config of openfaas (Sluice's own: no Kong original). The plugin calls
-- the OpenFaaS gateway at host:port, /function/<function_name>[.<namespace>]
-- (or /async-function/... with `async`). Credentials for a gateway behind
-- an authenticating proxy: `basic_auth` or `bearer_token`, not both.

local typedefs = require "kong.db.schema.typedefs"


local NULL = require("cjson").null


return {
  name = "openfaas",
  fields = {
    { protocols = typedefs.protocols_http },
    { config = {
        type = "record",
        fields = {
          { host = typedefs.host { required = true } },
          { port = typedefs.port { required = true, default = 8080 } },
          { https = { type = "boolean", default = false } },
          { https_verify = { type = "boolean", default = false } },
          -- OpenFaaS names: [-a-zA-Z_0-9.]+ (the gateway's NameExpression)
          { function_name = { type = "string", required = true,
                              match = "^[%w_%-%.]+$",
                              err = "invalid function name" } },
          { namespace = { type = "string", match = "^[%w_%-]+$",
                          err = "invalid namespace" } },
          { async = { type = "boolean", default = false } },
          { callback_url = typedefs.url },
          { basic_auth = {
              type = "record",
              required = false,
              fields = {
                { username = { type = "string", required = true } },
                { password = { type = "string", required = true,
                               referenceable = true, encrypted = true } },
              },
            },
          },
          { bearer_token = { type = "string", referenceable = true,
                             encrypted = true } },
          { timeout = { type = "integer", default = 60000, gt = 0 } },
          { keepalive = { type = "integer", default = 60000,
                          between = { 0, 2 ^ 31 - 2 } } },
          { forward_path = { type = "boolean", default = true } },
          { forward_query = { type = "boolean", default = true } },
          { forward_headers = { type = "boolean", default = true } },
        },
        entity_checks = {
          { mutually_exclusive = { "basic_auth", "bearer_token" } },
          { conditional = {
              if_field = "callback_url", if_match = { ne = NULL },
              then_field = "async", then_match = { eq = true },
              then_err = "callback_url needs async = true",
            },
          },
        },
      },
    },
  },
}
