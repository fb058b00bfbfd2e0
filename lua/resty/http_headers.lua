-- resty.http_headers: the case-insensitive header table of lua-resty-http
-- (0.17 API), written for Sluice.
--
-- `new()` returns a plain table whose keys are header names as first set
-- (so `pairs` walks them with their original case), with a metatable that
-- makes lookups and assignments ignore case and treat `_` as `-`:
--   h["Content-Type"] = "text/plain"
--   h.content_type, h["CONTENT-TYPE"]  --> "text/plain"
--   h["content-type"] = "x"            -- replaces the value, keeps the key
--   h["Content-Type"] = nil            -- removes it
-- Non-string keys are stored as they are.

local setmetatable = setmetatable
local rawget = rawget
local rawset = rawset
local type = type
local lower = string.lower
local gsub = string.gsub


local _M = {
  _VERSION = "0.17.2",
}


local function normalize(name)
  return (gsub(lower(name), "_", "-"))
end


--- A new, empty, case-insensitive header table.
-- @treturn table
function _M.new()
  -- normalized name -> the key it is stored under; an entry may be stale
  -- when the key was cleared by a raw assignment, so it is always checked
  local keys = {}

  local mt = {
    __index = function(t, name)
      if type(name) ~= "string" then
        return nil
      end
      local key = keys[normalize(name)]
      if key ~= nil then
        return rawget(t, key)
      end
      return nil
    end,

    __newindex = function(t, name, value)
      if type(name) ~= "string" then
        rawset(t, name, value)
        return
      end
      local norm = normalize(name)
      local key = keys[norm]
      if key ~= nil and rawget(t, key) ~= nil then
        rawset(t, key, value)
        if value == nil then
          keys[norm] = nil
        end
        return
      end
      if value ~= nil then
        keys[norm] = name
        rawset(t, name, value)
      else
        keys[norm] = nil
      end
    end,
  }

  return setmetatable({}, mt)
end


return _M
