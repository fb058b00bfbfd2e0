-- Declarative configuration loader: reads a Kong `kong.yml` (YAML or JSON),
-- validates services, routes, consumers and plugins against their entity
-- schemas and returns a normalized flat config (Kong DAO-row style).
--
--   local cfg, err, err_t = declarative.load_file(path, opts)
--   local cfg, err, err_t = declarative.load_string(text, filename, opts)
--
-- On failure `err` has one line per error, each naming the file, the entity
-- and the field; `err_t` is Kong's declarative error table (code 14) with
-- `fields` mirroring the input and `flattened_errors`.
--
-- opts.regex_check(pattern) -> true | nil, errmsg   checks "~" route paths
-- opts.plugin_check(row) -> true | row | nil, err_table
--   called for each valid plugin row; returning a table replaces the row,
--   `err_table` is a Kong field error table (e.g. { config = { x = "..." } })
--   or a string (an entity error).

local cjson = require "cjson.safe"
local lyaml = require "lyaml"
local validate = require "sluice.schema.validate"
local uuid = require "sluice.uuid"


local type = type
local pairs = pairs
local ipairs = ipairs
local next = next
local tostring = tostring
local tonumber = tonumber
local unpack = unpack
local setmetatable = setmetatable
local getmetatable = getmetatable
local error = error
local pcall = pcall
local fmt = string.format
local find = string.find
local sub = string.sub
local match = string.match
local gsub = string.gsub
local concat = table.concat
local insert = table.insert
local sort = table.sort
local io_open = io.open


local NULL = cjson.null
local YAML_NULL = lyaml.null


local SCHEMAS = {
  services = require "sluice.schema.entities.services",
  routes = require "sluice.schema.entities.routes",
  consumers = require "sluice.schema.entities.consumers",
  plugins = require "sluice.schema.entities.plugins",
}


-- Kong's namespace for declarative ids
-- (kong/db/schema/others/declarative_config.lua); each entity type gets
-- v5(NAMESPACE, "<entity>") as its own namespace.
local NAMESPACE = "fd02801f-0957-4a15-a55a-c8d9606f30b5"


local ENTITY_NS = {}
for name in pairs(SCHEMAS) do
  ENTITY_NS[name] = uuid.generate_v5(NAMESPACE, name)
end


local ENTITY_ORDER = { "services", "routes", "consumers", "plugins" }


local SINGULAR = {
  services = "service",
  routes = "route",
  consumers = "consumer",
  plugins = "plugin",
}


-- nested children each entity may hold, with the FK they get
local CHILDREN = {
  services = { { "routes", "service" }, { "plugins", "service" } },
  routes = { { "plugins", "route" } },
  consumers = { { "plugins", "consumer" } },
  plugins = {},
}


-- foreign key fields and the entity they point to
local FOREIGN = {
  routes = { { "service", "services" } },
  plugins = { { "route", "routes" }, { "service", "services" },
              { "consumer", "consumers" } },
  services = {},
  consumers = {},
}


local TOP_LEVEL = {
  fields = {
    { _format_version = { type = "string", required = true,
                          one_of = { "1.1", "2.1", "3.0" } } },
    { _transform = { type = "boolean", default = true } },
    { _comment = { type = "string" } },
    { _ignore = { type = "array", elements = { type = "any" } } },
  },
}


local ERR_CODE = 14
local ERR_NAME = "invalid declarative configuration"


local _M = {
  NAMESPACE = NAMESPACE,
}


-- ------------------------------------------------------------------------
-- parsing

-- lyaml.null -> cjson.null, everywhere
local function unify_nulls(v)
  if v == YAML_NULL then
    return NULL
  end
  if type(v) == "table" then
    local t = {}
    for k, x in pairs(v) do
      t[k] = unify_nulls(x)
    end
    return t
  end
  return v
end


local function yaml_position(text)
  -- lyaml reports the last good event; libyaml's own message has the
  -- position of the problem
  local ok, parser = pcall(require, "yaml")
  if not ok or type(parser.parser) ~= "function" then
    return nil
  end
  local next_event = parser.parser(text)
  while true do
    local pok, ev = pcall(next_event)
    if not pok then
      local line, col = match(tostring(ev), "line: (%d+), column: (%d+)")
      return tonumber(line), tonumber(col)
    end
    if ev == nil then
      return nil
    end
  end
end


local function decode(text, filename)
  if sub(text, 1, 3) == "\239\187\191" then
    text = sub(text, 4)
  end

  if match(text, "^%s*{") then
    local doc, err = cjson.decode(text)
    if err then
      local at = tonumber(match(err, "character (%d+)"))
      local line = 1
      if at then
        local _, n = gsub(sub(text, 1, at), "\n", "")
        line = n + 1
      end
      return nil, fmt("%s:%d: invalid JSON: %s", filename, line, err)
    end
    return doc
  end

  local ok, doc = pcall(lyaml.load, text)
  if not ok then
    local msg = gsub(tostring(doc), "^%d+:%d+: ", "")
    local line, col = yaml_position(text)
    if not line then
      line, col = match(tostring(doc), "^(%d+):(%d+):")
    end
    if line then
      return nil, fmt("%s:%s:%s: invalid YAML: %s", filename, line, col, msg)
    end
    return nil, fmt("%s: invalid YAML: %s", filename, msg)
  end
  return unify_nulls(doc)
end


-- ------------------------------------------------------------------------
-- helpers

local function is_string(v)
  return type(v) == "string" and v ~= ""
end


local function shallow_copy(t)
  local c = {}
  for k, v in pairs(t) do
    c[k] = v
  end
  return c
end


-- drops null-valued keys of maps, recursively (plugin config)
local function strip_nulls(v)
  if type(v) ~= "table" then
    return v
  end
  local t = {}
  for k, x in pairs(v) do
    if x ~= NULL then
      t[k] = strip_nulls(x)
    end
  end
  return setmetatable(t, getmetatable(v))
end


-- `fields` node for a path like { "services", 1, "routes", 2 }
local function err_node(root, path)
  local node = root
  for _, k in ipairs(path) do
    local child = node[k]
    if type(child) ~= "table" then
      child = {}
      node[k] = child
    end
    node = child
  end
  return node
end


local function merge_errors(dst, src)
  for k, v in pairs(src) do
    if k == "@entity" then
      local list = dst["@entity"] or {}
      dst["@entity"] = list
      for _, m in ipairs(v) do
        insert(list, m)
      end
    elseif type(v) == "table" and type(dst[k]) == "table" then
      merge_errors(dst[k], v)
    elseif dst[k] == nil then
      dst[k] = v
    end
  end
end


local function add_entity_error(errs, msg)
  local list = errs["@entity"] or {}
  errs["@entity"] = list
  insert(list, msg)
end


-- "paths[1]", "config.foo", "headers.Host"
local function field_path(path)
  local out = {}
  for i, k in ipairs(path) do
    if type(k) == "number" then
      out[#out + 1] = "[" .. k .. "]"
    else
      if i > 1 then
        out[#out + 1] = "."
      end
      out[#out + 1] = tostring(k)
    end
  end
  return concat(out)
end


-- Kong's dotted field names in flattened errors: "paths.1"
local function dotted_path(path)
  local out = {}
  for i, k in ipairs(path) do
    out[i] = tostring(k)
  end
  return concat(out, ".")
end


local IDENT = "^[%a_][%w_]*$"


-- compact, deterministic rendering as pl.pretty.write(t, "")
local function pretty(v)
  if type(v) == "string" then
    return fmt("%q", v)
  end
  if type(v) ~= "table" then
    return tostring(v)
  end
  local parts = {}
  local n = 0
  while v[n + 1] ~= nil do
    n = n + 1
  end
  for i = 1, n do
    parts[#parts + 1] = pretty(v[i])
  end
  local keys = {}
  for k in pairs(v) do
    if not (type(k) == "number" and k >= 1 and k <= n and k % 1 == 0) then
      keys[#keys + 1] = k
    end
  end
  sort(keys, function(a, b)
    if type(a) ~= type(b) then
      return type(a) == "number"
    end
    return a < b
  end)
  for _, k in ipairs(keys) do
    local key
    if type(k) == "string" and find(k, IDENT) then
      key = k
    else
      key = "[" .. pretty(k) .. "]"
    end
    parts[#parts + 1] = key .. "=" .. pretty(v[k])
  end
  return "{" .. concat(parts, ",") .. "}"
end


-- ------------------------------------------------------------------------
-- services `url` shorthand (Kong's services.lua shorthands)

--- Kong's `url` shorthand of services: { protocol, host, port, path }.
-- A host or path the url lacks is `absent` (nil unless given: the Admin
-- API passes cjson.null).
local function parse_url(url, absent)
  local scheme, rest = match(url, "^(%a[%w+.-]*)://(.*)$")
  if not scheme then
    rest = url
  end
  local authority, path = match(rest, "^([^/?#]*)(.*)$")
  path = match(path, "^([^?#]*)")
  authority = gsub(authority, "^.*@", "")

  local host, port
  if sub(authority, 1, 1) == "[" then
    host, port = match(authority, "^(%[[^%]]*%]):?(%d*)$")
  else
    host, port = match(authority, "^([^:]*):?(%d*)$")
  end
  port = tonumber(port)

  local protocol = scheme
  if not protocol then
    protocol = port == 443 and "https" or "http"
  end
  if not port then
    port = protocol == "https" and 443 or 80
  end

  return {
    protocol = protocol,
    host = (host and host ~= "") and host or absent,
    port = port,
    path = (path and path ~= "") and path or absent,
  }
end
_M.parse_url = parse_url


-- ------------------------------------------------------------------------
-- loading

local function describe(etype, input)
  if etype == "consumers" then
    if is_string(input.username) then
      return fmt(" (username '%s')", input.username)
    end
    if is_string(input.custom_id) then
      return fmt(" (custom_id '%s')", input.custom_id)
    end
    return ""
  end
  if is_string(input.name) then
    return fmt(" (name '%s')", input.name)
  end
  return ""
end


-- Kong's build_cache_key for plugins: "plugins:name:route:service:consumer"
local function plugin_cache_key(item)
  local input = item.input
  if not is_string(input.name) then
    return nil
  end
  local ck = { "plugins", input.name }
  for _, fk in ipairs({ "route", "service", "consumer" }) do
    local v = input[fk]
    if type(v) == "string" then
      ck[#ck + 1] = v
    elseif type(v) == "table" and type(v.id) == "string" then
      ck[#ck + 1] = v.id
    elseif v == nil and item.parent and item.parent_fk == fk then
      local pid = item.parent.input.id
      if type(pid) ~= "string" then
        return nil
      end
      ck[#ck + 1] = pid
    else
      ck[#ck + 1] = ""
    end
  end
  return concat(ck, ":")
end


local function generate_id(item)
  local input = item.input
  if input.id ~= nil and input.id ~= NULL then
    return
  end
  local etype = item.etype
  local key
  if etype == "plugins" then
    key = plugin_cache_key(item)
  else
    local k = input[SCHEMAS[etype].endpoint_key]
    if is_string(k) then
      key = k
    end
  end
  if key then
    input.id = uuid.generate_v5(ENTITY_NS[etype], key)
  else
    input.id = uuid.generate_v4()
  end
  item.generated_id = true
end


local Loader = {}
Loader.__index = Loader


function Loader:doc_error(key, msg)
  self.fields[key] = self.fields[key] or msg
  insert(self.doc_lines, { key = key, msg = msg })
end


-- registers one entity (and, recursively, its nested children)
function Loader:collect(etype, raw, path, label, parent, parent_fk)
  local errs = {}
  if type(raw) ~= "table" or (next(raw) ~= nil and validate.is_sequence(raw))
  then
    local node_parent = err_node(self.fields, { unpack(path, 1, #path - 1) })
    node_parent[path[#path]] = validate.ERRORS.RECORD
    insert(self.bad_lines, { label = label, msg = validate.ERRORS.RECORD })
    return
  end

  local input = {}
  local nested = {}
  for _, c in ipairs(CHILDREN[etype]) do
    nested[c[1]] = c[2]
  end
  for k, v in pairs(raw) do
    if k == "_comment" or k == "_ignore" then -- luacheck: ignore
      -- allowed on any entity, and dropped
    elseif nested[k] then -- luacheck: ignore
      -- handled below
    elseif v ~= NULL then
      input[k] = v
    end
  end
  if raw._comment ~= nil and raw._comment ~= NULL
     and type(raw._comment) ~= "string"
  then
    errs._comment = validate.ERRORS.STRING
  end
  if raw._ignore ~= nil and raw._ignore ~= NULL
     and not validate.is_sequence(raw._ignore)
  then
    errs._ignore = validate.ERRORS.ARRAY
  end

  local item = {
    etype = etype,
    input = input,
    path = path,
    label = label .. describe(etype, input),
    parent = parent,
    parent_fk = parent_fk,
    errs = errs,
  }

  if parent then
    for _, f in ipairs(FOREIGN[etype]) do
      if input[f[1]] ~= nil then
        errs[f[1]] = fmt(validate.ERRORS.EQ, "null")
        input[f[1]] = nil
      end
    end
  end

  if etype == "plugins" and type(input.config) == "table" then
    input.config = strip_nulls(input.config)
  end

  generate_id(item)

  if parent and uuid.is_valid(parent.input.id) then
    input[parent_fk] = { id = parent.input.id }
  end

  insert(self.items, item)

  for _, c in ipairs(CHILDREN[etype]) do
    local key = c[1]
    local list = raw[key]
    if list ~= nil and list ~= NULL then
      if type(list) ~= "table"
         or (next(list) ~= nil and not validate.is_sequence(list))
      then
        errs[key] = validate.ERRORS.ARRAY
      else
        for i, child in ipairs(list) do
          local cpath = { unpack(path) }
          cpath[#cpath + 1] = key
          cpath[#cpath + 1] = i
          self:collect(key, child, cpath,
                       fmt("%s.%s[%d]", item.label, key, i), item, c[2])
        end
      end
    end
  end
end


function Loader:index()
  local by_id, by_key = {}, {}
  for _, etype in ipairs(ENTITY_ORDER) do
    by_id[etype], by_key[etype] = {}, {}
  end
  for _, item in ipairs(self.items) do
    local input = item.input
    local schema = SCHEMAS[item.etype]
    if type(input.id) == "string" and by_id[item.etype][input.id] == nil then
      by_id[item.etype][input.id] = item
    end
    local ek = schema.endpoint_key
    if ek and is_string(input[ek]) and by_key[item.etype][input[ek]] == nil
    then
      by_key[item.etype][input[ek]] = item
    end
  end
  self.by_id, self.by_key = by_id, by_key
end


local function uniqueness_msg(etype, key, value)
  return "uniqueness violation: '" .. etype .. "' entity with " .. key
         .. " set to '" .. tostring(value) .. "' already declared"
end


function Loader:check_unique()
  local seen = {}
  for _, item in ipairs(self.items) do
    local etype = item.etype
    local schema = SCHEMAS[etype]
    validate.compile(schema)
    seen[etype] = seen[etype] or { id = {} }
    local s = seen[etype]

    local id = item.input.id
    if type(id) == "string" then
      if s.id[id] then
        -- a generated id repeats only with a repeated endpoint key (or
        -- plugin), which is reported below (or was, above)
        if not item.generated_id then
          add_entity_error(item.errs,
                           uniqueness_msg(etype, "primary key", id))
        end
      else
        s.id[id] = true
      end
    end

    for _, fname in ipairs(schema.field_order) do
      local def = schema.fields_by_name[fname]
      local v = item.input[fname]
      if def.unique and type(v) == "string" then
        s[fname] = s[fname] or {}
        if s[fname][v] then
          add_entity_error(item.errs, uniqueness_msg(etype, fname, v))
        else
          s[fname][v] = true
        end
      end
    end
  end
end


-- resolves top-level FKs given by name or id into { id = ... }
function Loader:resolve_references()
  for _, item in ipairs(self.items) do
    local input = item.input
    for _, f in ipairs(FOREIGN[item.etype]) do
      local fk, target = f[1], f[2]
      local v = input[fk]
      if v ~= nil and not (item.parent and item.parent_fk == fk) then
        local key = v
        if type(v) == "table" and v.id ~= nil
           and not validate.is_sequence(v)
        then
          key = v.id
        end
        if type(key) ~= "string" then
          item.errs[fk] = validate.ERRORS.STRING
          input[fk] = nil
        else
          local found = self.by_key[target][key] or self.by_id[target][key]
          if not found then
            add_entity_error(item.errs, fmt(
              "invalid reference '%s: %s' (no such entry in '%s')",
              fk, key, target))
            input[fk] = nil
          else
            input[fk] = { id = found.input.id }
          end
        end
      end
    end
  end
end


-- the same plugin (name, route, service, consumer) declared twice
function Loader:check_plugin_duplicates()
  local seen = {}
  for _, item in ipairs(self.items) do
    if item.etype == "plugins" and is_string(item.input.name) then
      local input = item.input
      local function fk_id(k)
        return type(input[k]) == "table" and tostring(input[k].id) or ""
      end
      local key = concat({ input.name, fk_id("route"), fk_id("service"),
                           fk_id("consumer") }, ":")
      if seen[key] then
        add_entity_error(item.errs, fmt(
          "uniqueness violation: 'plugins' entity with name set to '%s' "
          .. "already declared for the same route, service and consumer",
          input.name))
      else
        seen[key] = true
      end
    end
  end
end


function Loader:validate_items()
  local ctx = { regex_check = self.opts.regex_check }
  local plugin_check = self.opts.plugin_check

  for _, item in ipairs(self.items) do
    local etype = item.etype
    local input = item.input

    if etype == "services" and input.url ~= nil then
      local url = input.url
      input.url = nil
      if type(url) ~= "string" then
        item.errs.url = validate.ERRORS.STRING
      else
        local parts = parse_url(url)
        input.protocol = parts.protocol
        input.host = parts.host
        input.port = parts.port
        input.path = parts.path
      end
    end

    local out, errs = validate.validate_record(SCHEMAS[etype], input, ctx)

    if not errs and not next(item.errs) and etype == "plugins"
       and plugin_check
    then
      local res, perr = plugin_check(out)
      if type(res) == "table" then
        out = res
      elseif not res then
        if type(perr) == "table" then
          errs = perr
        else
          errs = { ["@entity"] = { tostring(perr or "invalid plugin") } }
        end
      end
    end

    if errs then
      merge_errors(item.errs, errs)
    end

    if next(item.errs) then
      self.failed = true
    else
      insert(self.result[etype], out)
    end
  end
end


function Loader:report()
  local lines = {}
  local flattened = {}
  local file = self.filename

  for _, d in ipairs(self.doc_lines) do
    lines[#lines + 1] = fmt("%s: %s: %s", file, d.key, d.msg)
  end
  for _, b in ipairs(self.bad_lines) do
    lines[#lines + 1] = fmt("%s: %s: %s", file, b.label, b.msg)
  end

  for _, item in ipairs(self.items) do
    if next(item.errs) then
      local node = err_node(self.fields, item.path)
      merge_errors(node, validate.deep_copy(item.errs))

      local errors = {}
      for _, e in ipairs(validate.flatten_errors(item.errs)) do
        if #e.path == 0 then
          lines[#lines + 1] = fmt("%s: %s: %s", file, item.label, e.message)
          errors[#errors + 1] = { type = "entity", message = e.message }
        else
          lines[#lines + 1] = fmt("%s: %s: %s: %s", file, item.label,
                                  field_path(e.path), e.message)
          errors[#errors + 1] = { type = "field",
                                  field = dotted_path(e.path),
                                  message = e.message }
        end
      end

      local input = item.input
      local tags = input.tags
      if not (validate.is_sequence(tags) and #tags > 0) then
        tags = nil
      else
        for _, t in ipairs(tags) do
          if type(t) ~= "string" then
            tags = nil
            break
          end
        end
      end

      flattened[#flattened + 1] = {
        entity_type = SINGULAR[item.etype],
        entity_name = is_string(input.name) and input.name or nil,
        entity_id = uuid.is_valid(input.id) and input.id or nil,
        entity_tags = tags,
        entity = input,
        errors = errors,
      }
    end
  end

  local err_t = {
    code = ERR_CODE,
    name = ERR_NAME,
    message = "declarative config is invalid: " .. pretty(self.fields),
    fields = self.fields,
    flattened_errors = flattened,
  }
  return concat(lines, "\n"), err_t
end


local function parse_error(msg)
  return nil, msg, {
    code = ERR_CODE,
    name = ERR_NAME,
    message = "failed parsing declarative configuration: " .. msg,
    fields = {},
    flattened_errors = {},
  }
end


local function check_opts(opts, level)
  if opts == nil then
    return {}
  end
  if type(opts) ~= "table" then
    error("opts must be a table", level)
  end
  for _, k in ipairs({ "regex_check", "plugin_check" }) do
    if opts[k] ~= nil and type(opts[k]) ~= "function" then
      error("opts." .. k .. " must be a function", level)
    end
  end
  return opts
end


local function load(text, filename, opts, doc)
  if doc == nil then
    local perr
    doc, perr = decode(text, filename)
    if perr then
      return parse_error(perr)
    end
  end
  if type(doc) ~= "table" or (next(doc) ~= nil and validate.is_sequence(doc))
  then
    return parse_error(filename .. ": expected an object")
  end

  local self = setmetatable({
    filename = filename,
    opts = opts,
    fields = {},
    doc_lines = {},
    bad_lines = {},
    items = {},
    result = {},
  }, Loader)

  -- top level: metadata and entity arrays
  local meta = {}
  for k, v in pairs(doc) do
    if not SCHEMAS[k] then
      meta[k] = v
    end
  end
  local top, terrs = validate.validate_record(TOP_LEVEL, meta)
  if terrs then
    for _, e in ipairs(validate.flatten_errors(terrs)) do
      self:doc_error(field_path(e.path), e.message)
    end
  end

  for _, etype in ipairs(ENTITY_ORDER) do
    self.result[etype] = setmetatable({}, cjson.array_mt)
  end

  for _, etype in ipairs(ENTITY_ORDER) do
    local list = doc[etype]
    if list ~= nil and list ~= NULL then
      if type(list) ~= "table" or not validate.is_sequence(list) then
        self:doc_error(etype, validate.ERRORS.ARRAY)
      else
        for i, raw in ipairs(list) do
          self:collect(etype, raw, { etype, i }, fmt("%s[%d]", etype, i))
        end
      end
    end
  end

  self:index()
  self:resolve_references()
  self:check_plugin_duplicates()
  self:check_unique()
  self:validate_items()

  if self.failed or #self.doc_lines > 0 or #self.bad_lines > 0 then
    local err, err_t = self:report()
    return nil, err, err_t
  end

  local cfg = self.result
  cfg._format_version = top._format_version
  cfg._transform = top._transform
  return cfg
end


--- Loads a declarative config from a string. `filename` only names the
-- source in messages (default "kong.yml"). JSON if the text starts with
-- '{', YAML otherwise.
function _M.load_string(text, filename, opts)
  if type(text) ~= "string" then
    error("text must be a string", 2)
  end
  if filename ~= nil and type(filename) ~= "string" then
    error("filename must be a string", 2)
  end
  opts = check_opts(opts, 3)
  return load(text, filename or "kong.yml", opts)
end


--- Loads a declarative config already decoded into a Lua table (the Admin
-- API's POST /config, the stores). cjson.null values are accepted as in JSON.
function _M.load_table(doc, filename, opts)
  if type(doc) ~= "table" then
    return parse_error((filename or "<table>") .. ": expected an object")
  end
  opts = check_opts(opts, 3)
  return load(nil, filename or "<table>", opts, unify_nulls(doc))
end


--- Loads a declarative config file.
function _M.load_file(path, opts)
  if type(path) ~= "string" then
    error("path must be a string", 2)
  end
  opts = check_opts(opts, 3)

  local f, err = io_open(path, "rb")
  if not f then
    return parse_error(err)
  end
  local text = f:read("*a")
  f:close()
  if not text then
    return parse_error(path .. ": could not read file")
  end
  return load(text, path, opts)
end


return _M
