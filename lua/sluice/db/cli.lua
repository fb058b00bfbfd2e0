-- `sluice migrations ...` and `sluice config db_import|db_export`: C loads
-- the configuration (-c, -p, environment) and calls
-- require("sluice.db.cli").run(argv, conf) -> exit code.
--
--   sluice migrations bootstrap     create the schema on an empty database
--   sluice migrations up            apply pending migrations
--   sluice migrations list          executed / pending (exit 0 up to date,
--                                   3 needs bootstrap, 5 pending: Kong's)
--   sluice migrations finish        nothing to finish (Kong's two-step
--                                   migrations do not exist here)
--   sluice migrations reset [-y]    drop every table (asks unless -y)
--   sluice config db_import FILE    validate FILE (YAML or JSON, as
--                                   kong.yml), then replace the store's
--                                   content with it in one transaction
--   sluice config db_export [FILE]  the store as a declarative file
--                                   (_format_version "3.0"; JSON when FILE
--                                   ends in .json, else YAML; stdout
--                                   without FILE; -y overwrites FILE)
--
-- argv: the words after the program name, e.g. { "migrations", "list",
-- "-c", "x.conf" } (the group word may be left out); -c/-p and their values
-- are skipped, C has read them.

local db = require "sluice.db"
local migrations = require "sluice.db.migrations"
local cjson = require "cjson"
local ffi = require "ffi"


local type = type
local pairs = pairs
local next = next
local ipairs = ipairs
local pcall = pcall
local tostring = tostring
local tonumber = tonumber
local fmt = string.format
local sub = string.sub
local lower = string.lower
local concat = table.concat


pcall(ffi.cdef, "int mkdir(const char *path, unsigned int mode);")


local USAGE = [[
Usage: sluice migrations COMMAND [OPTIONS]

Manage the database schema of the configuration store (database =
embedded or postgres).

The available commands are:
  bootstrap                 Bootstrap the database and run all migrations.
  up                        Run any new migrations.
  finish                    Finish pending migrations (none in Sluice).
  list                      List executed and pending migrations.
  reset                     Reset the database (drops every table).

Options:
  -y,--yes                  Assume "yes" to prompts and run non-interactively.
  -c,--conf     (optional string)   Configuration file.
  -p,--prefix   (optional string)   Override prefix directory.

Usage: sluice config db_import FILE | db_export [FILE] [-y]
]]


local _M = {}


local function out(...)
  io.stdout:write(...)
  io.stdout:write("\n")
  io.stdout:flush()
end


local function fail(msg)
  io.stderr:write("Error: ", tostring(msg), "\n")
  io.stderr:flush()
  return 1
end


local function parse(argv)
  local words, flags = {}, {}
  local i = 1
  while argv[i] ~= nil do
    local a = tostring(argv[i])
    if a == "-c" or a == "--conf" or a == "-p" or a == "--prefix"
       or a == "--db-timeout" or a == "--lock-timeout"
    then
      i = i + 1
    elseif a == "-y" or a == "--yes" then
      flags.yes = true
    elseif a == "-q" or a == "--quiet" then
      flags.quiet = true
    elseif a == "-f" or a == "--force" then
      flags.force = true
    elseif sub(a, 1, 1) == "-" and #a > 1 then
      flags[a] = true
    else
      words[#words + 1] = a
    end
    i = i + 1
  end
  local group = words[1]
  if group == "migrations" or group == "config" then
    table.remove(words, 1)
  elseif group == "db_import" or group == "db_export" then
    group = "config"
  else
    group = "migrations"
  end
  return group, words, flags
end


local function open_store(conf, create_prefix)
  local mode = db.mode(conf)
  if mode == "off" then
    return nil, "the configuration store is off (database = off): set "
                .. "database = embedded or postgres"
  end
  if mode == "embedded" and create_prefix then
    local prefix = conf.prefix
    if type(prefix) == "string" and prefix ~= "" then
      ffi.C.mkdir(prefix, tonumber("755", 8))
    end
  end
  return db.open(conf)
end


-- --------------------------------------------------------------------------
-- migrations

local function confirm()
  io.stdout:write("Are you sure? This operation is irreversible. [Y/n] ")
  io.stdout:flush()
  local answer = io.stdin:read("*l")
  return answer ~= nil and (answer == "" or lower(answer) == "y"
                            or lower(answer) == "yes")
end


local function migrations_cmd(cmd, conf, flags)
  local log = flags.quiet and function() end or out
  if cmd == nil or cmd == "help" or flags["-h"] or flags["--help"] then
    io.stderr:write(USAGE)
    return cmd == nil and 1 or 0
  end
  local s, err = open_store(conf, cmd == "bootstrap")
  if not s then
    return fail(err)
  end
  local code = 0
  if cmd == "bootstrap" then
    local ok
    ok, err = migrations.bootstrap(s, log)
    if not ok then
      code = fail(err)
    end
  elseif cmd == "up" then
    local ok
    ok, err = migrations.up(s, log)
    if not ok then
      code = fail(err)
    end
  elseif cmd == "finish" then
    local state
    state, err = migrations.state(s)
    if not state then
      code = fail(err)
    elseif state.needs_bootstrap then
      code = fail("Cannot run migrations: "
                  .. migrations.NEEDS_BOOTSTRAP_MSG)
    elseif #state.pending > 0 then
      log("No pending migrations to finish")
      log("\n" .. migrations.NEW_MIGRATIONS_MSG)
    else
      log("No pending migrations to finish")
    end
  elseif cmd == "list" then
    local state
    state, err = migrations.state(s)
    if not state then
      code = fail(err)
    else
      local text
      text, code = migrations.list_text(state)
      out(text)
    end
  elseif cmd == "reset" then
    if not flags.yes and not confirm() then
      log("Canceled")
    else
      local ok
      ok, err = migrations.reset(s, log)
      if ok == nil then
        code = fail(err)
      elseif ok == false then
        code = 1
      end
    end
  else
    s:close()
    io.stderr:write(fmt("Error: No such command for migrations: %s\n\n",
                        tostring(cmd)))
    io.stderr:write(USAGE)
    return 1
  end
  s:close()
  return code
end


-- --------------------------------------------------------------------------
-- db_import / db_export

local function read_file(path)
  local f, err = io.open(path, "rb")
  if not f then
    return nil, err
  end
  local text = f:read("*a")
  f:close()
  return text
end


-- the store must be usable: the embedded one is created on demand, a
-- PostgreSQL one must be bootstrapped and up to date
local function ready(s, mode)
  if mode == "embedded" then
    local ok, err = migrations.bootstrap(s)
    if ok then
      ok, err = migrations.up(s)
    end
    return ok, err
  end
  return migrations.check(s)
end


-- config.check needs the enabled plugins' schemas: load them unless the
-- command line did
local function ensure_plugins(conf)
  local ok, plugins = pcall(require, "sluice.plugins")
  if not ok or type(plugins) ~= "table" or type(plugins.load) ~= "function"
  then
    return true
  end
  if type(plugins.loaded) == "table" and next(plugins.loaded) ~= nil then
    return true
  end
  local list = conf.plugins
  if type(list) == "table" then
    list = concat(list, ",")
  end
  return plugins.load(list ~= nil and tostring(list) or "bundled")
end


local function db_import(file, conf)
  if not file then
    return fail("db_import: missing FILE (sluice config db_import FILE)")
  end
  local text, err = read_file(file)
  if not text then
    return fail("Failed reading " .. file .. ": " .. tostring(err))
  end
  local pok, perr = ensure_plugins(conf)
  if not pok then
    return fail(perr)
  end
  local config = require "sluice.config"
  local cfg
  cfg, err = config.check_string(text, file)
  if not cfg then
    return fail("Failed parsing:\n" .. tostring(err))
  end
  out("parse successful, beginning import")
  local s
  s, err = open_store(conf, true)
  if not s then
    return fail(err)
  end
  local ok, ierr, info = ready(s, db.mode(conf))
  if ok then
    ok, ierr, info = s:replace_all(cfg)
  end
  s:close()
  if not ok then
    if ierr == "unique violation" and type(info) == "table" then
      ierr = fmt("%s: %s: unique violation on %s = '%s'", file,
                 tostring(info.entity), tostring(info.field),
                 tostring(info.value))
    end
    return fail("Failed importing " .. file .. ": " .. tostring(ierr))
  end
  local counts = {}
  for _, name in ipairs({ "services", "routes", "consumers", "plugins" }) do
    counts[#counts + 1] = fmt("%d %s", #(cfg[name] or {}), name)
  end
  out("import successful (" .. concat(counts, ", ") .. ")")
  return 0
end


-- cjson.null -> YAML null, everywhere
local function yaml_nulls(v, null)
  if v == cjson.null then
    return null
  end
  if type(v) == "table" then
    local t = {}
    for k, x in pairs(v) do
      t[k] = yaml_nulls(x, null)
    end
    return t
  end
  return v
end


--- The store's content as declarative text: JSON when `as_json`, else YAML.
function _M.export_text(everything, as_json)
  local doc = db.build_doc(everything)
  if as_json then
    -- entity lists one by one: an empty one must stay `[]` (this cjson
    -- writes an empty table as `{}`)
    local enc = cjson.new()
    enc.encode_sparse_array(true)
    local keys = {}
    for k in pairs(doc) do
      keys[#keys + 1] = k
    end
    table.sort(keys)
    local parts = {}
    for _, k in ipairs(keys) do
      local v = doc[k]
      local text
      if type(v) == "table" and next(v) == nil then
        text = "[]"
      else
        text = enc.encode(v)
      end
      parts[#parts + 1] = enc.encode(k) .. ":" .. text
    end
    return "{" .. concat(parts, ",") .. "}\n"
  end
  -- YAML: _format_version first, then the entities in their load order
  local lyaml = require "lyaml"
  local parts = { "_format_version: '" .. doc._format_version .. "'\n" }
  local names = {}
  for k in pairs(doc) do
    if k ~= "_format_version" then
      names[#names + 1] = k
    end
  end
  local rank = { services = 1, routes = 2, consumers = 3, plugins = 4 }
  table.sort(names, function(a, b)
    local ra, rb = rank[a] or 5, rank[b] or 5
    if ra ~= rb then
      return ra < rb
    end
    return a < b
  end)
  for _, k in ipairs(names) do
    local text = lyaml.dump({ { [k] = yaml_nulls(doc[k], lyaml.null) } })
    text = text:gsub("^%-%-%-%s*\n", ""):gsub("\n%.%.%.%s*$", "\n")
    parts[#parts + 1] = text
  end
  return concat(parts)
end


local function db_export(file, conf, flags)
  if file and not flags.yes and read_file(file) then
    return fail(file .. " already exists (use -y to overwrite it)")
  end
  local s, err = open_store(conf, false)
  if not s then
    return fail(err)
  end
  local ok
  ok, err = migrations.check(s)
  local everything
  if ok then
    everything, err = s:all()
  end
  s:close()
  if not everything then
    return fail(err)
  end
  local as_json = file and lower(file):match("%.json$") ~= nil
  local text
  ok, text = pcall(_M.export_text, everything, as_json)
  if not ok then
    return fail("Failed exporting: " .. tostring(text))
  end
  if not file then
    io.stdout:write(text)
    if sub(text, -1) ~= "\n" then
      io.stdout:write("\n")
    end
    io.stdout:flush()
    return 0
  end
  local f
  f, err = io.open(file, "wb")
  if not f then
    return fail("Failed writing " .. file .. ": " .. tostring(err))
  end
  f:write(text)
  f:close()
  out("exported the configuration to " .. file)
  return 0
end


--- Runs a command. argv: array of words; conf: the loaded configuration
-- (kong.configuration or a plain table of properties).
-- @return exit code
function _M.run(argv, conf)
  if type(argv) ~= "table" then
    error("argv must be a table", 2)
  end
  conf = conf or (_G.kong and _G.kong.configuration) or {}
  local group, words, flags = parse(argv)
  local ok, code = pcall(function()
    if group == "config" then
      local cmd = words[1]
      if cmd == "db_import" then
        return db_import(words[2], conf)
      elseif cmd == "db_export" then
        return db_export(words[2], conf, flags)
      end
      return fail("No such command for config: " .. tostring(cmd))
    end
    return migrations_cmd(words[1], conf, flags)
  end)
  if not ok then
    return fail(code)
  end
  return code
end


return _M
