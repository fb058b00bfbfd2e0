-- Installs Sluice's Lua tree (the runtime's Lua side) with `luarocks make`, so tools
-- and specs outside the checkout can require it. The gateway itself is built with make.
package = "sluice"
version = "0.1.0-1"
source = {
  url = "git+file:///dev/null",
}
description = {
  summary = "Lua side of Sluice, a Kong-compatible API gateway runtime in C",
  license = "Apache-2.0",
}
dependencies = {
  "lua >= 5.1",
}
build = {
  type = "builtin",
  modules = {
    ["sluice.declarative"] = "lua/sluice/declarative/init.lua",
    ["sluice.schema.validate"] = "lua/sluice/schema/validate.lua",
    ["sluice.schema.entities.services"] = "lua/sluice/schema/entities/services.lua",
    ["sluice.schema.entities.routes"] = "lua/sluice/schema/entities/routes.lua",
    ["sluice.schema.entities.consumers"] = "lua/sluice/schema/entities/consumers.lua",
    ["sluice.schema.entities.plugins"] = "lua/sluice/schema/entities/plugins.lua",
    ["sluice.uuid"] = "lua/sluice/uuid.lua",
  },
}
