-- Handler factory shared by pre-function and post-function, as Kong's
-- `kong/plugins/pre-function/_handler.lua`:
--
--   return require "kong.plugins.pre-function._handler"(priority)
--
-- Each phase of the config (certificate, rewrite, access, header_filter,
-- body_filter, log) is an array of Lua chunks. They are compiled through
-- kong.tools.sandbox on first use in a worker and cached per config table
-- (weak keys: a new config from a rebuild compiles afresh). The chunks of a
-- phase run in order.
--
-- A chunk runs whole on every call, unless on its first run it returns a
-- function: that function is then called at once and replaces the chunk, so
-- the code before `return function()` runs once per worker and config and
-- the upvalues persist. A first run that ends early (ngx.exit or
-- kong.response.exit yielding away) still counts as done: the next call
-- runs the chunk's function without redoing the set-up.

local sandbox = require "kong.tools.sandbox"
local kong_meta = require "kong.meta"


local type = type
local ipairs = ipairs
local setmetatable = setmetatable


local PHASES = {
  "certificate",
  "rewrite",
  "access",
  "header_filter",
  "body_filter",
  "log",
}


local function no_op()
end


-- One runner for the chunks of one phase.
local function compile_phase(chunks)
  if type(chunks) ~= "table" or #chunks == 0 then
    return no_op
  end

  local compiled = {}
  for i, code in ipairs(chunks) do
    local func = sandbox.sandbox(code)
    local first_run_complete = false

    -- stands in for the chunk until its first run is over
    compiled[i] = function()
      if first_run_complete then
        -- the first run ended early: from now on, func alone
        compiled[i] = func
        return func()
      end

      first_run_complete = true
      local result = func() -- may exit the request

      if type(result) == "function" then
        -- the chunk was set-up code returning the real handler
        func = result
        compiled[i] = func
        func() -- may exit as well
      end

      compiled[i] = func
    end
  end

  return function()
    for i = 1, #compiled do
      compiled[i]()
    end
  end
end


-- config table -> { phase -> runner }, compiled on first lookup
local config_cache = setmetatable({}, {
  __mode = "k",
  __index = function(self, config)
    local runners = {}
    for _, phase in ipairs(PHASES) do
      runners[phase] = compile_phase(config[phase])
    end
    self[config] = runners
    return runners
  end,
})


return function(priority)
  local ServerlessFunction = {
    PRIORITY = priority,
    VERSION = kong_meta.version,
  }


  function ServerlessFunction:certificate(config)
    config_cache[config].certificate()
  end


  function ServerlessFunction:rewrite(config)
    config_cache[config].rewrite()
  end


  function ServerlessFunction:access(config)
    config_cache[config].access()
  end


  function ServerlessFunction:header_filter(config)
    config_cache[config].header_filter()
  end


  function ServerlessFunction:body_filter(config)
    config_cache[config].body_filter()
  end


  function ServerlessFunction:log(config)
    config_cache[config].log()
  end


  return ServerlessFunction
end
