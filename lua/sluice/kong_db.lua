-- kong.db for plugin handlers: Kong's DAO calls (select, select_by_<key>,
-- page, each, insert, update, upsert, delete) on the core entities and on
-- the entities of enabled plugins' daos.lua, as the Admin API's api.lua
-- handlers get them (lua/sluice/admin/kong_db.lua). With a store they read
-- and write the store (writes are Admin API writes: one transaction, checked,
-- propagated); DB-less they read the running configuration.
--
-- Reads with a store go to the database: as on Kong, wrap them in
-- kong.cache:get(key, nil, loader) on the request path.

local setmetatable = setmetatable
local require = require


local _M = {}


local daos_registered = false
local last_cfg, last_db


-- the DAO object for the running configuration (rebuilt after a swap, so
-- DB-less reads see the new one)
local function current()
  if not daos_registered then
    -- the Admin API's router registers the plugins' daos.lua entities
    require("sluice.admin").router()
    daos_registered = true
  end
  local cfg = require("sluice.config").current()
  if last_db == nil or cfg ~= last_cfg then
    last_cfg = cfg
    last_db = require("sluice.admin.kong_db").new({
      store = require("sluice.admin").get_store(),
    })
  end
  return last_db
end


--- Sets kong.db on the `kong` global (in each worker).
function _M.install(kong)
  kong.db = setmetatable({}, {
    __index = function(_, name)
      return current()[name]
    end,
  })
end


return _M
