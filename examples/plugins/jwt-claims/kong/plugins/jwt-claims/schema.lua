-- Config of jwt-claims (see handler.lua). In Kong's style
-- (kong/plugins/key-auth/schema.lua): HTTP protocols only, never scoped to
-- a consumer (the plugin runs before any authentication plugin could name
-- one), and a config record whose defaults fill in what is left out.

local typedefs = require "kong.db.schema.typedefs"


return {
  name = "jwt-claims",
  fields = {
    { consumer = typedefs.no_consumer },
    { protocols = typedefs.protocols_http },
    { config = {
        type = "record",
        fields = {
          { secret = {
              description = "HS256 key. When set, the token's signature " ..
                            "must verify with it and its header must say " ..
                            "alg HS256; when unset, tokens are only decoded.",
              type = "string",
              required = false,
              len_min = 1,
              encrypted = true,
              referenceable = true,
          }, },
          { claim = {
              description = "Name of the payload claim to copy.",
              type = "string",
              required = true,
              default = "sub",
              len_min = 1,
          }, },
          { header = typedefs.header_name {
              description = "Response header that receives the claim.",
              required = true,
              default = "X-Claim",
          }, },
          { upstream_header = typedefs.header_name {
              description = "Request header, sent upstream, that also " ..
                            "receives the claim (none when unset).",
              required = false,
          }, },
          { leeway = {
              description = "Seconds of clock skew allowed on `exp`.",
              type = "integer",
              required = true,
              default = 0,
              between = { 0, 86400 },
          }, },
        },
    }, },
  },
}
