-- The "classic Kong workshop" JWT plugin as a third-party plugin, installed
-- the way Kong installs plugins (`luarocks make` in this directory), then
-- enabled with `plugins = bundled,jwt-claims` in kong.conf. Without
-- luarocks, point `lua_package_path` at this directory instead:
--   lua_package_path = /path/to/examples/plugins/jwt-claims/?.lua;;
package = "kong-plugin-jwt-claims"
version = "0.1.0-1"

local pluginName = package:match("^kong%-plugin%-(.+)$")  -- "jwt-claims"

supported_platforms = { "linux", "macosx" }
source = {
  url = "git+file:///dev/null",
}
description = {
  summary = "Checks a Bearer JWT (HS256, exp) and copies one of its " ..
            "claims into a response header and an upstream header",
  license = "Apache-2.0",
}
dependencies = {
  "lua >= 5.1",
}
build = {
  type = "builtin",
  modules = {
    ["kong.plugins." .. pluginName .. ".handler"] =
      "kong/plugins/" .. pluginName .. "/handler.lua",
    ["kong.plugins." .. pluginName .. ".schema"] =
      "kong/plugins/" .. pluginName .. "/schema.lua",
  },
}
