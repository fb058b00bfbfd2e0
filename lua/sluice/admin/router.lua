-- A small path router for the Admin API: Lapis-style patterns with
-- `:name` segments, literal segments winning over parameters.
--
--   local router = require("sluice.admin.router").new()
--   router:add("/services/:services", { GET = fn, PATCH = fn })
--   local route, params = router:match("/services/foo")
--     -> route.methods, params = { services = "foo" }
--
-- Adding a pattern twice merges the methods (later ones win). A trailing
-- slash is ignored; captures are URL-decoded.

local ngx_args = require "sluice.ngx.args"


local pairs = pairs
local ipairs = ipairs
local setmetatable = setmetatable
local sub = string.sub
local gmatch = string.gmatch
local sort = table.sort


local _M = {}
local Router = {}
Router.__index = Router


local function split(path)
  local out = {}
  for seg in gmatch(path, "[^/]+") do
    out[#out + 1] = seg
  end
  return out
end


function _M.new()
  return setmetatable({ routes = {}, by_pattern = {}, sorted = true }, Router)
end


--- Adds (or extends) the route for `pattern`. `methods` maps an HTTP
-- method to a handler; `extra` fields are kept on the route.
function Router:add(pattern, methods, extra)
  local route = self.by_pattern[pattern]
  if not route then
    local segs = split(pattern)
    local parts, literals = {}, 0
    for i, seg in ipairs(segs) do
      if sub(seg, 1, 1) == ":" then
        parts[i] = { param = sub(seg, 2) }
      else
        parts[i] = { literal = seg }
        literals = literals + 1
      end
    end
    route = { pattern = pattern, parts = parts, literals = literals,
              methods = {}, order = #self.routes + 1 }
    self.routes[#self.routes + 1] = route
    self.by_pattern[pattern] = route
    self.sorted = false
  end
  for m, fn in pairs(methods or {}) do
    route.methods[m] = fn
  end
  for k, v in pairs(extra or {}) do
    route[k] = v
  end
  return route
end


function Router:get(pattern)
  return self.by_pattern[pattern]
end


-- more literal segments first, then literals earlier in the path, then
-- the order of addition
local function better(a, b)
  if a.literals ~= b.literals then
    return a.literals > b.literals
  end
  local n = #a.parts
  for i = 1, n do
    local la, lb = a.parts[i].literal ~= nil, b.parts[i]
                                             and b.parts[i].literal ~= nil
    if la ~= lb then
      return la
    end
  end
  return a.order < b.order
end


--- The best route for `path` and its captures, or nil.
function Router:match(path)
  if not self.sorted then
    sort(self.routes, better)
    self.sorted = true
  end
  local segs = split(path)
  for _, route in ipairs(self.routes) do
    local parts = route.parts
    if #parts == #segs then
      local params = {}
      local ok = true
      for i, part in ipairs(parts) do
        local seg = segs[i]
        if part.literal then
          if part.literal ~= seg then
            ok = false
            break
          end
        else
          params[part.param] = ngx_args.unescape_uri(seg)
        end
      end
      if ok then
        return route, params
      end
    end
  end
  return nil
end


--- Every pattern, sorted (GET /endpoints).
function Router:patterns()
  local out = {}
  for _, route in ipairs(self.routes) do
    out[#out + 1] = route.pattern
  end
  sort(out)
  return out
end


function Router:each()
  local i = 0
  return function()
    i = i + 1
    local r = self.routes[i]
    if r then
      return r.pattern, r
    end
  end
end


return _M
