-- GET /config and POST /config (Kong's kong/api/routes/config.lua): export
-- the running configuration; replace it whole from a declarative document
-- (the body itself, or a `config` field holding YAML or JSON text), with
-- `flatten_errors` and `check_hash`. Kong serves them in DB-less mode only;
-- Sluice also serves them with a store, where POST replaces the store's
-- entities in one transaction (as `sluice config db_import`).

local cjson = require "cjson.safe"
local json = require "sluice.admin.json"
local lyaml = require "lyaml"
local errors = require "sluice.admin.errors"
local dbless = require "sluice.admin.dbless"


local type = type
local pairs = pairs
local ipairs = ipairs
local pcall = pcall
local require = require
local tostring = tostring
local setmetatable = setmetatable
local getmetatable = getmetatable
local lower = string.lower


local NULL = cjson.null
local ARRAY_MT = json.array_mt
local ENTITIES = { "services", "routes", "consumers", "plugins" }
local TRUE = { ["1"] = true, ["true"] = true, on = true, yes = true }


local _M = {}


local function yaml_safe(v)
  if v == NULL then
    return nil
  end
  if type(v) ~= "table" then
    return v
  end
  local out = {}
  for k, x in pairs(v) do
    out[k] = yaml_safe(x)
  end
  return out
end


--- The running configuration as a declarative document.
function _M.export()
  local current = require("sluice.config").current()
  local doc = { _format_version = "3.0", _transform = false }
  for _, name in ipairs(ENTITIES) do
    if type(current[name]) == "table" and current[name][1] ~= nil then
      doc[name] = current[name]
    end
  end
  return doc
end


function _M.get(self)
  local ok, text = pcall(lyaml.dump, { yaml_safe(_M.export()) })
  if not ok then
    return errors.exit(tostring(text))
  end
  return json.exit(200, { config = text })
end


local function flag(v)
  if type(v) == "table" then
    v = v[1]
  end
  if v == true then
    return true
  end
  return type(v) == "string" and TRUE[lower(v)] == true
end


-- the entities as Kong answers them: entity name -> { id -> entity }
local function entities_of(cfg)
  local out = {}
  for _, name in ipairs(ENTITIES) do
    local by_id = {}
    for _, row in ipairs(cfg[name] or {}) do
      if row.id then
        by_id[row.id] = row
      end
    end
    out[name] = by_id
  end
  return out
end


local function error_body(err_t, flatten)
  local body = {
    code = err_t.code or errors.codes.DECLARATIVE_CONFIG,
    name = err_t.name or "invalid declarative configuration",
    message = err_t.message,
    fields = err_t.fields or {},
  }
  if flatten then
    -- only the document-level errors stay in fields
    local top = {}
    for k, v in pairs(body.fields) do
      if type(v) ~= "table" then
        top[k] = v
      end
    end
    body.fields = top
    body.flattened_errors = setmetatable(err_t.flattened_errors or {},
                                         ARRAY_MT)
  end
  return body
end


-- the document or text the request carries
local function input_of(self)
  local post = self.args.post
  if self.body_kind == "json" and type(post) == "table"
     and post._format_version ~= nil then
    return post
  end
  local c = post and post.config
  if type(c) == "string" and c ~= "" then
    return c
  end
  if type(c) == "table" and getmetatable(c) ~= ARRAY_MT then
    return c
  end
  return nil
end


-- With a store: the document replaces every entity in one transaction,
-- then this worker applies it (the others follow the generation).
local function post_to_store(store, cfg, flatten)
  local ok, err, info = store:replace_all(cfg)
  if not ok then
    if err == "unique violation" and type(info) == "table" then
      err = "unique violation on " .. tostring(info.entity) .. "."
            .. tostring(info.field) .. " = '" .. tostring(info.value) .. "'"
    end
    return json.exit(400, error_body(errors.new(
      errors.codes.DECLARATIVE_CONFIG, tostring(err)), flatten))
  end
  local cok, cerr = require("sluice.db").changed()
  if not cok then
    kong.log.err("POST /config: stored, but not applied here: ", tostring(cerr))
  end
  return json.exit(201, entities_of(cfg))
end


function _M.post(self)
  local q = self.args.uri
  local flatten = flag(q.flatten_errors)
  local input = input_of(self)
  if input == nil then
    return json.exit(400, {
      message = "expected a declarative configuration" })
  end

  local config = require "sluice.config"
  local cfg, err, err_t
  if type(input) == "string" then
    cfg, err, err_t = config.check_string(input, "kong.yml")
  else
    cfg, err, err_t = config.check(input, "kong.yml")
  end
  if not cfg then
    if type(err_t) ~= "table" then
      err_t = errors.new(errors.codes.DECLARATIVE_CONFIG, tostring(err))
    end
    return json.exit(400, error_body(err_t, flatten))
  end

  if flag(q.check_hash) and config.hash_of(cfg) == config.hash() then
    return json.exit(304)
  end
  if self.store then
    return post_to_store(self.store, cfg, flatten)
  end

  if not dbless.lock() then
    return json.exit(429, {
      message = "Currently loading previous configuration",
    }, { ["Retry-After"] = "60" })
  end
  local ok, applied, aerr = pcall(config.apply_normalized, cfg,
                                  "<admin api>")
  if not ok or not applied then
    dbless.unlock()
    local msg = not ok and applied or aerr
    return json.exit(400, error_body(errors.new(
      errors.codes.DECLARATIVE_CONFIG, tostring(msg)), flatten))
  end
  local pok, gen, perr = pcall(dbless.publish, cfg)
  dbless.unlock()
  if not pok or not gen then
    kong.log.err("POST /config: the other workers will not see this ",
                 "configuration: ", tostring(pok and perr or gen))
  end
  return json.exit(201, entities_of(cfg))
end


function _M.mount(router)
  router:add("/config", { GET = _M.get, POST = _M.post })
end


return _M
