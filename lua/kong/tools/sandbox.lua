-- Loading of untrusted Lua (pre-/post-function and any plugin that runs
-- code from its config), as Kong's `kong.tools.sandbox`.
--
-- kong.conf `untrusted_lua` (read from `kong.configuration` when the `kong`
-- global is set; "sandbox" otherwise) picks one of three levels:
--
--   off      every compile raises `configuration.err_msg`
--   on       `load(code, name, "t", env)` with `env` indexing `_G`: full
--            read access; global writes (`_G.x = v` too: env._G is env)
--            land in `env`, never in `_G`
--   sandbox  (the default) the chunk sees a fresh environment made of
--            * the stdlib subset of kong.tools.sandbox.environment, the
--              library tables read-only (`Cannot modify <lib>.<k>.
--              Protected by the sandbox.`)
--            * `kong`: the real PDK behind a wrapper that hides
--              kong.licensing, kong.cache.cluster_events,
--              kong.core_cache.cluster_events and kong.db.connector.config
--              and shows kong.configuration with secrets as "******"
--            * `ngx`: the full ngx table
--            * `require`: only the modules of
--              `untrusted_lua_sandbox_requires`, else
--              `require '<m>' not allowed within sandbox`
--            * the globals named by `untrusted_lua_sandbox_environment`
--              (dotted names), as read-only views: reads go through,
--              writes stay in the view
--            * the raw keys of `opts.env`, which win over all of the above,
--              and `_G`, the environment itself
--            Global writes go to that per-chunk environment.
--
-- Code is always loaded in text mode: precompiled bytecode is refused.
-- LuaJIT is no security boundary; this stops accidents and trivial misuse.
--
-- API (Kong's):
--   sandbox(code, opts | chunkname, mode, env)   the compiled function;
--       raises on a syntax error or when untrusted_lua = off. opts:
--       { env = table, chunkname | chunk_name = string }. `mode` is
--       ignored: text only.
--   sandbox_lua(code, chunkname)      stdlib subset only, no kong/ngx; the
--       environment is read-only and `require` allows the LUA_REQUIRES list
--   validate_safe(code, opts)         true | false, "Error parsing function:
--       ..." (compiles, never runs the code; for schemas, Kong/kong#5110)
--   validate_function(code, opts)     runs the chunk: the function it
--       returns | false, err
--   validate(code, opts)              true | false, err (as above)
--   parse(code, opts)                 the returned function, or raises
--   configuration                     the lazily read settings (level,
--       enabled, sandbox_enabled, requires, env_vars, err_msg; an unknown
--       level counts as "sandbox"); :clear()/:reload()
--       forget them. They are also forgotten when `kong.configuration` is
--       replaced by another table.

local ENVIRONMENT = require "kong.tools.sandbox.environment"


local _G = _G
local type = type
local pairs = pairs
local ipairs = ipairs
local pcall = pcall
local error = error
local load = load
local require = require
local rawget = rawget
local rawset = rawset
local rawequal = rawequal
local tostring = tostring
local setmetatable = setmetatable
local getmetatable = getmetatable
local fmt = string.format
local gmatch = string.gmatch
local match = string.match
local clear = require "table.clear"


local OFF_MSG = "loading of untrusted Lua code disabled because " ..
                "'untrusted_lua' config option is set to 'off'"
local PROTECTED_MSG = "Cannot modify %s.%s. Protected by the sandbox."
local DENIED_REQUIRE_MSG = "require '%s' not allowed within sandbox"
local DEFAULT_LEVEL = "sandbox"
local LEVELS = { off = true, on = true, sandbox = true }

local REDACTED = "******"
-- kong.conf properties never shown to untrusted code (Kong's
-- conf_loader CONF_SENSITIVE)
local SENSITIVE = {
  pg_password = true,
  pg_ro_password = true,
  proxy_server = true,
  declarative_config_string = true,
  cluster_cert_key = true,
  ssl_cert_key = true,
  client_ssl_cert_key = true,
  admin_ssl_cert_key = true,
  admin_gui_ssl_cert_key = true,
  status_ssl_cert_key = true,
  debug_ssl_cert_key = true,
  ["$refs"] = true,
}

local WEAK_KEYS = { __mode = "k" }
local GLOBAL_MT = { __index = _G }


-- "a b lib.m" lists into { { "a" }, { "b" }, { "lib", "m" } }
local function parse_names(list)
  local out = {}
  for name in gmatch(list, "%S+") do
    local lib, member = match(name, "^([^.]+)%.(.+)$")
    out[#out + 1] = lib and { lib, member } or { name }
  end
  return out
end


local LUA_NAMES = parse_names(ENVIRONMENT.LUA)
local LUA_REQUIRES = {}
for name in gmatch(ENVIRONMENT.LUA_REQUIRES, "%S+") do
  LUA_REQUIRES[name] = true
end


local function raise_protected(name)
  return function(_, k)
    error(fmt(PROTECTED_MSG, name, tostring(k)), 0)
  end
end


-- An empty read-only table whose writes raise (`name`.<k>).
local function read_only(members, name)
  return setmetatable({}, {
    __index = members,
    __newindex = raise_protected(name),
  })
end


-- What stands in for a hidden field: empty, read-only, prints as "nil".
local function denied(name)
  return setmetatable({}, {
    __newindex = raise_protected(name),
    __tostring = function()
      return "nil"
    end,
  })
end


local function deep_copy(v, seen)
  if type(v) ~= "table" then
    return v
  end
  seen = seen or {}
  if seen[v] then
    return seen[v]
  end
  local t = {}
  seen[v] = t
  for k, x in pairs(v) do
    t[deep_copy(k, seen)] = deep_copy(x, seen)
  end
  return setmetatable(t, getmetatable(v))
end


-- A read-only view of table `t`: reads go to `t` (tables come back as views
-- of their own), writes stay in the view.
local function view(t)
  local children = setmetatable({}, WEAK_KEYS)
  return setmetatable({}, {
    __index = function(_, k)
      local v = t[k]
      if type(v) ~= "table" then
        return v
      end
      local c = children[v]
      if not c then
        c = view(v)
        children[v] = c
      end
      return c
    end,
  })
end


-- ------------------------------------------------------------------------
-- Settings


local function kong_conf()
  local k = rawget(_G, "kong")
  if type(k) ~= "table" then
    return nil
  end
  local c = k.configuration
  if type(c) ~= "table" then
    return nil
  end
  return c
end


local function get_conf(name)
  local c = kong_conf()
  if c then
    return c[name]
  end
end


-- A kong.conf list: an array, or a string of comma/space separated names.
local function conf_list(name)
  local v = get_conf(name)
  if type(v) == "string" then
    local out = {}
    for w in gmatch(v, "[^%s,]+") do
      out[#out + 1] = w
    end
    return out
  end
  if type(v) ~= "table" then
    return {}
  end
  return v
end


local LAZY = {
  level = function()
    local v = get_conf("untrusted_lua")
    -- unknown values get the strictest level that still runs code
    if not LEVELS[v] then
      return DEFAULT_LEVEL
    end
    return v
  end,

  enabled = function(self)
    return self.level ~= "off"
  end,

  sandbox_enabled = function(self)
    return self.level == "sandbox"
  end,

  requires = function()
    local set = {}
    for _, m in ipairs(conf_list("untrusted_lua_sandbox_requires")) do
      set[m] = true
    end
    return set
  end,

  env_vars = function()
    return conf_list("untrusted_lua_sandbox_environment")
  end,
}


local CONF_VALUES = {
  clear = clear,
  reload = clear,
  err_msg = OFF_MSG,
}


local configuration = setmetatable({}, {
  __index = function(self, key)
    local l = LAZY[key]
    if not l then
      return CONF_VALUES[key]
    end
    local v = l(self)
    rawset(self, key, v)
    return v
  end,
})


-- Forget the settings read from an older kong.configuration table.
local conf_source
local function refresh()
  local c = kong_conf()
  if not rawequal(c, conf_source) then
    clear(configuration)
    conf_source = c
  end
end


-- ------------------------------------------------------------------------
-- The sandbox environment


local function make_require(allowed)
  return function(modname)
    if not allowed[modname] then
      error(fmt(DENIED_REQUIRE_MSG, tostring(modname)), 0)
    end
    return require(modname)
  end
end


local function lib_member(lib, member)
  local t = rawget(_G, lib)
  local v = type(t) == "table" and t[member] or nil
  if v == nil and lib == "table" then
    -- LuaJIT's table.new & co. live in modules until something loads them
    local ok, m = pcall(require, "table." .. member)
    if ok and type(m) == "function" then
      v = m
    end
  end
  return v
end


-- Fills `env` with the stdlib subset; returns the library tables it made
-- (read-only), each mapped to the table of its members.
local function add_stdlib(env)
  local members = {}
  for _, n in ipairs(LUA_NAMES) do
    local lib, member = n[1], n[2]
    if member then
      local v = lib_member(lib, member)
      if v ~= nil then
        members[lib] = members[lib] or {}
        members[lib][member] = v
      end
    else
      env[lib] = rawget(_G, lib)
    end
  end
  local libs = {}
  for lib, m in pairs(members) do
    local t = read_only(m, lib)
    env[lib] = t
    libs[t] = m
  end
  return libs
end


-- kong.configuration as untrusted code sees it: a copy with the sensitive
-- values replaced by "******" (Kong's conf_loader.remove_sensitive), the
-- keys a proxy configuration does not iterate looked up on demand, new
-- keys refused.
local function redacted_configuration(conf)
  local copy
  if type(conf.remove_sensitive) == "function" then
    copy = conf.remove_sensitive()
  end
  if type(copy) ~= "table" then
    copy = {}
    for k, v in pairs(conf) do
      copy[k] = deep_copy(v)
    end
  end
  local refs = rawget(copy, "$refs")
  if type(refs) == "table" then
    -- show the vault references, not the secrets they resolved to
    for k, v in pairs(refs) do
      if not SENSITIVE[k] then
        copy[k] = v
      end
    end
  end
  copy["$refs"] = nil
  for k in pairs(SENSITIVE) do
    if rawget(copy, k) ~= nil then
      copy[k] = REDACTED
    end
  end
  return setmetatable(copy, {
    __index = function(_, k)
      if k == "$refs" then
        return nil
      end
      local v = conf[k]
      if v ~= nil and SENSITIVE[k] then
        return REDACTED
      end
      return deep_copy(v)
    end,
    __newindex = raise_protected("kong.configuration"),
  })
end


local function hide(field, name)
  return function(t)
    if type(t) ~= "table" then
      return t
    end
    return setmetatable({ [field] = denied(name) }, { __index = t })
  end
end


-- kong.<key> -> function(real value) returning what the sandbox shows
local KONG_WRAPPERS = {
  licensing = function()
    return denied("kong.licensing")
  end,
  cache = hide("cluster_events", "kong.cache.cluster_events"),
  core_cache = hide("cluster_events", "kong.core_cache.cluster_events"),
  configuration = function(conf)
    if type(conf) ~= "table" then
      return conf
    end
    return redacted_configuration(conf)
  end,
  db = function(db)
    if type(db) ~= "table" then
      return db
    end
    return setmetatable({}, {
      __index = function(self, k)
        local v = db[k]
        if k == "connector" and type(v) == "table" then
          v = hide("config", "kong.db.connector.config")(v)
          rawset(self, k, v)
        end
        return v
      end,
    })
  end,
}


-- The `kong` of a chunk: the real one (read live), with the fields above
-- wrapped once per value of the real field.
local function sandboxed_kong(real)
  local memo = {}
  return setmetatable({}, {
    __index = function(_, key)
      local v = real[key]
      local wrap = KONG_WRAPPERS[key]
      if not wrap then
        return v
      end
      local m = memo[key]
      if not m or not rawequal(m.source, v) then
        m = { source = v, value = wrap(v) }
        memo[key] = m
      end
      return m.value
    end,
  })
end


-- link("a.b.c", _G, env): env.a.b.c = a view of _G.a.b.c, creating the
-- missing intermediate tables; nothing when _G lacks it.
local function link(name, src, target, libs)
  local head, rest = match(name, "^([^.]+)%.?(.*)$")
  if not head then
    return
  end
  local v = src[head]
  if v == nil then
    return
  end
  if rest == "" then
    target[head] = type(v) == "table" and view(v) or v
    return
  end
  if type(v) ~= "table" then
    return
  end
  local t = rawget(target, head)
  if libs[t] then
    -- a library table of the stdlib stays read-only: extend its members
    t = libs[t]
  elseif t == nil then
    t = {}
    target[head] = t
  end
  link(rest, v, t, libs)
end


local function chunk_env(given)
  local env = {}
  local libs = add_stdlib(env)

  local real_kong = rawget(_G, "kong")
  local kong_view = type(real_kong) == "table" and sandboxed_kong(real_kong)
                    or nil
  env.kong = kong_view
  env.ngx = rawget(_G, "ngx")
  env.require = make_require(configuration.requires)

  for _, name in ipairs(configuration.env_vars) do
    link(name, _G, env, libs)
  end

  if given then
    for k, v in pairs(given) do
      -- handing the real kong in does not bypass the wrapper
      if not (k == "kong" and rawequal(v, real_kong) and kong_view) then
        env[k] = v
      end
    end
    setmetatable(env, { __index = given })
  end

  env._G = env
  return env
end


-- ------------------------------------------------------------------------
-- API


local function compile(chunk, chunkname, env)
  if type(chunk) ~= "string" then
    error("expected a string", 3)
  end
  local fn, err = load(chunk, chunkname, "t", env)
  if not fn then
    error(err, 0)
  end
  -- untrusted code stays interpreted (and its closures too): the runtime's
  -- watchdog can then always stop an endless loop in it
  if jit and jit.off then
    jit.off(fn, true)
  end
  return fn
end


-- `mode` is accepted for Kong's signature and ignored: text only.
local function sandbox(chunk, chunkname_or_opts, mode, env) -- luacheck: ignore
  refresh()
  if not configuration.enabled then
    error(OFF_MSG, 0)
  end

  local chunkname = chunkname_or_opts
  if type(chunkname_or_opts) == "table" then
    chunkname = chunkname_or_opts.chunkname or chunkname_or_opts.chunk_name
    env = env or chunkname_or_opts.env
  end

  if not configuration.sandbox_enabled then
    -- unrestricted, but global writes (`_G.x` included) stay out of _G
    env = env or {}
    if rawget(env, "_G") == nil then
      env._G = env
    end
    setmetatable(env, GLOBAL_MT)
    return compile(chunk, chunkname, env)
  end

  -- Kong wraps this in a pcall that re-raises; errors are the same
  -- without it, and tracebacks keep the chunk's frames
  return compile(chunk, chunkname, chunk_env(env))
end


local function sandbox_lua(chunk, chunkname)
  refresh()
  if not configuration.enabled then
    error(OFF_MSG, 0)
  end
  if not configuration.sandbox_enabled then
    return compile(chunk, chunkname, setmetatable({}, GLOBAL_MT))
  end

  local env = {}
  add_stdlib(env)
  env.require = make_require(LUA_REQUIRES)
  env._G = env
  setmetatable(env, { __newindex = raise_protected("_G") })
  return compile(chunk, chunkname, env)
end


-- Compiles only: the code is never run (Kong/kong#5110).
local function validate_safe(chunk, chunkname_or_opts, mode, env)
  local ok, err = pcall(sandbox, chunk, chunkname_or_opts, mode, env)
  if not ok then
    return false, "Error parsing function: " .. tostring(err)
  end
  return true
end


local function validate_function(chunk, chunkname_or_opts, mode, env)
  local ok, compiled = pcall(sandbox, chunk, chunkname_or_opts, mode, env)
  if not ok then
    return false, "Error parsing function: " .. tostring(compiled)
  end

  local fn
  ok, fn = pcall(compiled)
  if not ok then
    return false, fn
  end
  if type(fn) == "function" then
    return fn
  end
  return false, "Bad return value from function, expected function " ..
                "type, got " .. type(fn)
end


local function validate(chunk, chunkname_or_opts, mode, env)
  local fn, err = validate_function(chunk, chunkname_or_opts, mode, env)
  if not fn then
    return false, err
  end
  return true
end


local function parse(chunk, chunkname_or_opts, mode, env)
  local fn, err = validate_function(chunk, chunkname_or_opts, mode, env)
  if not fn then
    error(err, 2)
  end
  return fn
end


return {
  sandbox = sandbox,
  sandbox_lua = sandbox_lua,
  validate = validate,
  validate_safe = validate_safe,
  validate_function = validate_function,
  parse = parse,
  configuration = configuration,
}
