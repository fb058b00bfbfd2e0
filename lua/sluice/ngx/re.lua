-- ngx.re for the ngx shim: match, find, gmatch, sub, gsub and split, on
-- PCRE2 through the FFI, with lua-nginx-module / lua-resty-core semantics.
--
-- * Results: match returns a captures table ([0] whole match, [1..n]
--   groups, named groups by name, `false` for groups that did not take
--   part), nil on no match, or nil, err. find returns from, to (of group
--   `nth`, default 0). sub/gsub return the new string and the number of
--   substitutions. On a compile or match failure they return nil plus the
--   error, in the same position as OpenResty (match: nil, err; find, sub,
--   gsub: nil, nil, err).
-- * Options: a anchored, i caseless, m multiline, s dotall, x extended,
--   u UTF-8, U UTF-8 without checking the subject, j JIT, o compile once
--   (bounded cache), D duplicate names (named captures become arrays),
--   J JavaScript compatibility. d (DFA matching) is accepted but NOT
--   supported: the ordinary matcher is used, so a DFA caller gets the first
--   (leftmost, perl-style) match instead of the longest one. Any other flag
--   raises `unknown flag "x" (flags "...")`.
-- * ctx.pos (1-based) is where matching starts, and is set to the position
--   after the match.
-- * Replacement templates: $0..$N, ${N}, $$ for a literal dollar; groups that
--   did not match give "". As an extension OpenResty lacks, ${name} refers to
--   a named group (OpenResty refuses named references, so no working plugin
--   relies on that failing). Any other use of '$' fails with
--   "failed to compile the replacement template".
-- * Empty matches advance one byte, as OpenResty: gsub("abc", "", "-") is
--   "-a-b-c-".
-- * split(subj, regex, opts?, ctx?, max?, res?) is lua-resty-core's
--   ngx.re.split (the `ngx.re` module).
--
-- One match-data block is shared and grown as needed; nothing that can call
-- user code runs between a match and the reading of its offsets.

local ffi = require "ffi"
local bit = require "bit"
local lib = require "sluice.ngx.lib"


local ffi_new = ffi.new
local ffi_str = ffi.string
local ffi_gc = ffi.gc
local ffi_cast = ffi.cast
local bor = bit.bor
local band = bit.band
local byte = string.byte
local sub = string.sub
local fmt = string.format
local concat = table.concat
local type = type
local tostring = tostring
local tonumber = tonumber
local setmetatable = setmetatable
local pairs = pairs
local pcall = pcall
local require = require
local error = error
local math_min = math.min


ffi.cdef [[
typedef struct pcre2_real_code_8 sl_pcre2_code;
typedef struct pcre2_real_match_data_8 sl_pcre2_match_data;

sl_pcre2_code *sl_pcre2_compile(const char *pattern, size_t length,
                                uint32_t options, int *errorcode,
                                size_t *erroroffset, void *ccontext)
  asm("pcre2_compile_8");
void sl_pcre2_code_free(sl_pcre2_code *code) asm("pcre2_code_free_8");
int sl_pcre2_jit_compile(sl_pcre2_code *code, uint32_t options)
  asm("pcre2_jit_compile_8");
int sl_pcre2_pattern_info(const sl_pcre2_code *code, uint32_t what,
                          void *where) asm("pcre2_pattern_info_8");
sl_pcre2_match_data *sl_pcre2_match_data_create(uint32_t ovecsize,
                                                void *gcontext)
  asm("pcre2_match_data_create_8");
void sl_pcre2_match_data_free(sl_pcre2_match_data *md)
  asm("pcre2_match_data_free_8");
int sl_pcre2_match(const sl_pcre2_code *code, const char *subject,
                   size_t length, size_t startoffset, uint32_t options,
                   sl_pcre2_match_data *md, void *mcontext)
  asm("pcre2_match_8");
size_t *sl_pcre2_get_ovector_pointer(sl_pcre2_match_data *md)
  asm("pcre2_get_ovector_pointer_8");
int sl_pcre2_get_error_message(int errorcode, unsigned char *buffer,
                               size_t bufflen)
  asm("pcre2_get_error_message_8");
]]


local pcre2 = lib.load("pcre2-8", "sl_pcre2_compile")


-- PCRE2 compile options (pcre2.h)
local PCRE2_ALLOW_EMPTY_CLASS = 0x00000001
local PCRE2_ALT_BSUX = 0x00000002
local PCRE2_CASELESS = 0x00000008
local PCRE2_DOTALL = 0x00000020
local PCRE2_DUPNAMES = 0x00000040
local PCRE2_EXTENDED = 0x00000080
local PCRE2_MATCH_UNSET_BACKREF = 0x00000200
local PCRE2_MULTILINE = 0x00000400
local PCRE2_UTF = 0x00080000
local PCRE2_ANCHORED = 0x80000000
-- match option
local PCRE2_NO_UTF_CHECK = 0x40000000
local PCRE2_JIT_COMPLETE = 0x00000001

local PCRE2_INFO_CAPTURECOUNT = 4
local PCRE2_INFO_NAMECOUNT = 17
local PCRE2_INFO_NAMEENTRYSIZE = 18
local PCRE2_INFO_NAMETABLE = 19

local PCRE2_ERROR_NOMATCH = -1

-- our flags
local FLAG_COMPILE_ONCE = 0x01
local FLAG_JIT = 0x04
local FLAG_DUPNAMES = 0x08
local FLAG_NO_UTF8_CHECK = 0x10

local MAX_CACHED_REGEX = 1024
local MAX_CACHED_TEMPLATES = 256
local ERRBUF_SIZE = 256
local DEFAULT_SPLIT_RES_SIZE = 4
local DOLLAR = 36


local int_out = ffi_new("int[1]")
local size_out = ffi_new("size_t[1]")
local uint32_out = ffi_new("uint32_t[1]")
local ptr_out = ffi_new("const uint8_t *[1]")
local errbuf = ffi_new("unsigned char[?]", ERRBUF_SIZE)
local int64_ptr = ffi.typeof("const int64_t *")

local table_new
do
  local ok, tnew = pcall(require, "table.new")
  if ok then
    table_new = tnew
  else
    table_new = function() return {} end
  end
end


local _M = {}


-- shared match data, grown to the largest capture count seen
local md_pairs = 0
local match_data
local ovector     -- int64_t view of the match data's ovector


local function ensure_match_data(npairs)
  if npairs <= md_pairs then
    return
  end
  local size = md_pairs > 0 and md_pairs or 16
  while size < npairs do
    size = size * 2
  end
  local md = pcre2.sl_pcre2_match_data_create(size, nil)
  if md == nil then
    error("no memory for pcre2 match data")
  end
  match_data = ffi_gc(md, pcre2.sl_pcre2_match_data_free)
  ovector = ffi_cast(int64_ptr, pcre2.sl_pcre2_get_ovector_pointer(md))
  md_pairs = size
end


ensure_match_data(16)


-- option string -> { compile options, flags }
local opts_cache = {}


local function parse_opts(opts)
  local cached = opts_cache[opts]
  if cached then
    return cached[1], cached[2]
  end

  local copts, flags = 0, 0
  for i = 1, #opts do
    local c = sub(opts, i, i)
    if c == "o" then
      flags = bor(flags, FLAG_COMPILE_ONCE)
    elseif c == "j" then
      flags = bor(flags, FLAG_JIT)
    elseif c == "i" then
      copts = bor(copts, PCRE2_CASELESS)
    elseif c == "s" then
      copts = bor(copts, PCRE2_DOTALL)
    elseif c == "m" then
      copts = bor(copts, PCRE2_MULTILINE)
    elseif c == "u" then
      copts = bor(copts, PCRE2_UTF)
    elseif c == "U" then
      copts = bor(copts, PCRE2_UTF)
      flags = bor(flags, FLAG_NO_UTF8_CHECK)
    elseif c == "x" then
      copts = bor(copts, PCRE2_EXTENDED)
    elseif c == "d" then  -- luacheck: ignore 542
      -- DFA mode is not supported; the regular matcher is used
    elseif c == "a" then
      copts = bor(copts, PCRE2_ANCHORED)
    elseif c == "D" then
      copts = bor(copts, PCRE2_DUPNAMES)
      flags = bor(flags, FLAG_DUPNAMES)
    elseif c == "J" then
      copts = bor(copts, PCRE2_ALT_BSUX, PCRE2_ALLOW_EMPTY_CLASS,
                  PCRE2_MATCH_UNSET_BACKREF)
    else
      return nil, fmt('unknown flag "%s" (flags "%s")', c, opts)
    end
  end

  opts_cache[opts] = { copts, flags }
  return copts, flags
end


local function compile(regex, copts, flags)
  local code = pcre2.sl_pcre2_compile(regex, #regex, copts, int_out,
                                      size_out, nil)
  if code == nil then
    local n = pcre2.sl_pcre2_get_error_message(int_out[0], errbuf,
                                               ERRBUF_SIZE)
    local msg = n > 0 and ffi_str(errbuf, n) or "unknown error"
    local off = tonumber(size_out[0])
    if off >= #regex then
      return nil, fmt('pcre2_compile() failed: %s in "%s"', msg, regex)
    end
    return nil, fmt('pcre2_compile() failed: %s in "%s" at "%s"', msg,
                    regex, sub(regex, off + 1))
  end
  code = ffi_gc(code, pcre2.sl_pcre2_code_free)

  if band(flags, FLAG_JIT) ~= 0 then
    -- a failed JIT compilation is not an error: the interpreter is used
    pcre2.sl_pcre2_jit_compile(code, PCRE2_JIT_COMPLETE)
  end

  pcre2.sl_pcre2_pattern_info(code, PCRE2_INFO_CAPTURECOUNT, uint32_out)
  local ncap = tonumber(uint32_out[0])

  pcre2.sl_pcre2_pattern_info(code, PCRE2_INFO_NAMECOUNT, uint32_out)
  local name_count = tonumber(uint32_out[0])

  local names, name_idx
  if name_count > 0 then
    pcre2.sl_pcre2_pattern_info(code, PCRE2_INFO_NAMEENTRYSIZE, uint32_out)
    local entry_size = tonumber(uint32_out[0])
    pcre2.sl_pcre2_pattern_info(code, PCRE2_INFO_NAMETABLE, ptr_out)
    local tbl = ptr_out[0]
    names = table_new(name_count, 0)
    name_idx = table_new(name_count, 0)
    for i = 0, name_count - 1 do
      local entry = tbl + i * entry_size
      name_idx[i + 1] = entry[0] * 256 + entry[1]
      names[i + 1] = ffi_str(entry + 2)
    end
  end

  ensure_match_data(ncap + 1)

  return {
    code = code,
    ncap = ncap,
    name_count = name_count,
    names = names,
    name_idx = name_idx,
    dupnames = band(flags, FLAG_DUPNAMES) ~= 0,
    mopts = band(flags, FLAG_NO_UTF8_CHECK) ~= 0 and PCRE2_NO_UTF_CHECK or 0,
  }
end


-- compile-once cache: two generations, so that it holds between
-- MAX_CACHED_REGEX / 2 and MAX_CACHED_REGEX entries and recently used
-- regexes survive a rotation
local cache_cur = {}
local cache_old = {}
local cache_count = 0


local function cache_get(key)
  local c = cache_cur[key]
  if c then
    return c
  end
  c = cache_old[key]
  if c then
    cache_old[key] = nil
    cache_cur[key] = c
    cache_count = cache_count + 1
  end
  return c
end


local function cache_put(key, compiled)
  if cache_count >= MAX_CACHED_REGEX / 2 then
    cache_old = cache_cur
    cache_cur = {}
    cache_count = 0
  end
  cache_cur[key] = compiled
  cache_count = cache_count + 1
end


--- Number of compiled regexes currently held by the "o" cache (for tests).
function _M.cache_size()
  local n = 0
  for _ in pairs(cache_cur) do
    n = n + 1
  end
  for _ in pairs(cache_old) do
    n = n + 1
  end
  return n
end


-- returns compiled, compile_once; or nil, err; raises on a bad flag
local function get_compiled(regex, opts, level)
  local tr = type(regex)
  if tr ~= "string" then
    if tr == "number" then
      regex = tostring(regex)
    else
      error("bad argument #2 (string expected, got " .. tr .. ")", level)
    end
  end

  local copts, flags = 0, 0
  if opts then
    local err
    copts, flags = parse_opts(opts)
    if not copts then
      err = flags
      error(err, level)
    end
  else
    opts = ""
  end

  if band(flags, FLAG_COMPILE_ONCE) ~= 0 then
    local key = regex .. "\0" .. opts
    local compiled = cache_get(key)
    if compiled then
      return compiled, true
    end
    local err
    compiled, err = compile(regex, copts, flags)
    if not compiled then
      return nil, err
    end
    cache_put(key, compiled)
    return compiled, true
  end

  local compiled, err = compile(regex, copts, flags)
  if not compiled then
    return nil, err
  end
  return compiled, false
end


local function release(compiled, compile_once)
  if not compile_once then
    pcre2.sl_pcre2_code_free(ffi_gc(compiled.code, nil))
    compiled.code = nil
  end
end


local function exec(compiled, subj, len, pos)
  return pcre2.sl_pcre2_match(compiled.code, subj, len, pos, compiled.mopts,
                              match_data, nil)
end


-- captures of the last exec into `res` (or a new table)
local function collect(compiled, rc, subj, res)
  local ncap = compiled.ncap
  if not res then
    res = table_new(ncap, compiled.name_count)
  end

  local ov = ovector
  for i = 0, ncap do
    if i >= rc then
      res[i] = false
    else
      local from = tonumber(ov[2 * i])
      if from >= 0 then
        res[i] = sub(subj, from + 1, tonumber(ov[2 * i + 1]))
      else
        res[i] = false
      end
    end
  end

  local names = compiled.names
  if names then
    local name_idx = compiled.name_idx
    if compiled.dupnames then
      for i = 1, #names do
        local name = names[i]
        local cap = res[name_idx[i]]
        -- unmatched groups are not collected
        if cap then
          local old = res[name]
          if type(old) == "table" then
            old[#old + 1] = cap
          else
            res[name] = { cap }
          end
        end
      end
    else
      for i = 1, #names do
        res[names[i]] = res[name_idx[i]]
      end
    end
  end

  return res
end


local function start_pos(ctx)
  if ctx then
    local pos = ctx.pos
    if pos and pos > 0 then
      return pos - 1
    end
  end
  return 0
end


--- ngx.re.match(subject, regex, options?, ctx?, res_table?)
function _M.match(subj, regex, opts, ctx, res)
  subj = tostring(subj)
  local compiled, compile_once = get_compiled(regex, opts, 3)
  if not compiled then
    return nil, compile_once
  end

  local rc = exec(compiled, subj, #subj, start_pos(ctx))
  if rc == PCRE2_ERROR_NOMATCH then
    release(compiled, compile_once)
    return nil
  end
  if rc < 0 then
    release(compiled, compile_once)
    return nil, "pcre_exec() failed: " .. rc
  end

  if ctx then
    ctx.pos = tonumber(ovector[1]) + 1
  end

  res = collect(compiled, rc, subj, res)
  release(compiled, compile_once)
  return res
end


--- ngx.re.find(subject, regex, options?, ctx?, nth?) -> from, to
function _M.find(subj, regex, opts, ctx, nth)
  subj = tostring(subj)
  local compiled, compile_once = get_compiled(regex, opts, 3)
  if not compiled then
    return nil, nil, compile_once
  end

  local rc = exec(compiled, subj, #subj, start_pos(ctx))
  if rc == PCRE2_ERROR_NOMATCH then
    release(compiled, compile_once)
    return nil
  end
  if rc < 0 then
    release(compiled, compile_once)
    return nil, nil, "pcre_exec() failed: " .. rc
  end

  if ctx then
    ctx.pos = tonumber(ovector[1]) + 1
  end

  if not nth or nth < 0 then
    nth = 0
  end
  local ncap = compiled.ncap
  release(compiled, compile_once)

  if nth > ncap then
    return nil, nil, "nth out of bound"
  end
  if nth >= rc then
    return nil, nil
  end

  local from = tonumber(ovector[nth * 2])
  local to = tonumber(ovector[nth * 2 + 1])
  if from < 0 or to < 0 then
    return nil, nil
  end
  return from + 1, to
end


local gmatch_mt = {}
gmatch_mt.__index = gmatch_mt


local function gmatch_next(self)
  local compiled = self.compiled
  if not compiled then
    return nil
  end

  local subj = self.subj
  local len = #subj
  local rc = exec(compiled, subj, len, self.pos)
  if rc == PCRE2_ERROR_NOMATCH then
    self.compiled = nil
    return nil
  end
  if rc < 0 then
    self.compiled = nil
    return nil, "pcre_exec() failed: " .. rc
  end

  local from = tonumber(ovector[0])
  local to = tonumber(ovector[1])
  local res = collect(compiled, rc, subj)
  if to == from then
    to = to + 1
    if to > len then
      self.compiled = nil
      return res
    end
  end
  self.pos = to
  return res
end


gmatch_mt.__call = gmatch_next


--- ngx.re.gmatch(subject, regex, options?) -> iterator
function _M.gmatch(subj, regex, opts)
  subj = tostring(subj)
  local compiled, compile_once = get_compiled(regex, opts, 3)
  if not compiled then
    return nil, compile_once
  end
  -- a non-cached regex is freed by the GC once the iterator is dropped
  return setmetatable({ compiled = compiled, subj = subj, pos = 0 },
                      gmatch_mt)
end


-- replacement templates: array of literal strings, group numbers (numbers)
-- and named references ({ name })
local tpl_cache = {}
local tpl_count = 0
local TPL_ERR = "failed to compile the replacement template"


local function is_digit(c)
  return c and c >= 48 and c <= 57
end


local function is_name_char(c)
  return c and ((c >= 65 and c <= 90) or (c >= 97 and c <= 122)
                or (c >= 48 and c <= 57) or c == 95)
end


local function compile_template(tpl)
  local cached = tpl_cache[tpl]
  if cached then
    return cached
  end

  local parts = {}
  local n = 0
  local len = #tpl
  local i = 1
  local lit_start = 1

  while i <= len do
    if byte(tpl, i) ~= DOLLAR then
      i = i + 1
    else
      if i > lit_start then
        n = n + 1
        parts[n] = sub(tpl, lit_start, i - 1)
      end
      i = i + 1
      local c = byte(tpl, i)
      if not c then
        return nil
      end

      if c == DOLLAR then
        n = n + 1
        parts[n] = "$"
        i = i + 1

      else
        local bracket = c == 123    -- '{'
        if bracket then
          i = i + 1
          c = byte(tpl, i)
          if not c then
            return nil
          end
        end

        local start = i
        if is_digit(c) then
          local num = 0
          while is_digit(byte(tpl, i)) do
            num = num * 10 + byte(tpl, i) - 48
            i = i + 1
          end
          if bracket then
            if byte(tpl, i) ~= 125 then    -- '}'
              return nil
            end
            i = i + 1
          end
          n = n + 1
          parts[n] = num

        else
          while is_name_char(byte(tpl, i)) do
            i = i + 1
          end
          local name = sub(tpl, start, i - 1)
          -- only ${name} is accepted (an extension); $name fails as in
          -- OpenResty, and so do empty names and missing brackets
          if not bracket or name == "" or byte(tpl, i) ~= 125 then
            return nil
          end
          i = i + 1
          n = n + 1
          parts[n] = { name }
        end
      end
      lit_start = i
    end
  end

  if lit_start <= len then
    n = n + 1
    parts[n] = sub(tpl, lit_start, len)
  end

  if tpl_count >= MAX_CACHED_TEMPLATES then
    tpl_cache = {}
    tpl_count = 0
  end
  tpl_cache[tpl] = parts
  tpl_count = tpl_count + 1
  return parts
end


-- template with named references replaced by group numbers, or nil
local function resolve_template(parts, compiled)
  local resolved
  for i = 1, #parts do
    local p = parts[i]
    if type(p) == "table" then
      local idx
      local names = compiled.names
      if names then
        for j = 1, #names do
          if names[j] == p[1] then
            idx = compiled.name_idx[j]
            break
          end
        end
      end
      if not idx then
        return nil
      end
      if not resolved then
        resolved = {}
        for j = 1, #parts do
          resolved[j] = parts[j]
        end
      end
      resolved[i] = idx
    end
  end
  return resolved or parts
end


-- expand a template against the last exec
local function expand(parts, rc, subj, out, n)
  local ov = ovector
  for i = 1, #parts do
    local p = parts[i]
    if type(p) == "number" then
      if p < rc then
        local from = tonumber(ov[2 * p])
        if from >= 0 then
          n = n + 1
          out[n] = sub(subj, from + 1, tonumber(ov[2 * p + 1]))
        end
      end
    else
      n = n + 1
      out[n] = p
    end
  end
  return n
end


local function sub_helper(subj, regex, replace, opts, global)
  local tfn = type(replace) == "function"
  local parts
  if not tfn then
    if type(replace) ~= "string" then
      replace = tostring(replace)
    end
    parts = compile_template(replace)
  end

  local compiled, compile_once = get_compiled(regex, opts, 4)
  if not compiled then
    return nil, nil, compile_once
  end

  if parts then
    parts = resolve_template(parts, compiled)
  end
  if not tfn and not parts then
    release(compiled, compile_once)
    return nil, nil, TPL_ERR
  end

  subj = tostring(subj)
  local len = #subj
  local out
  local n = 0
  local count = 0
  local pos = 0
  local cp_pos = 0

  while true do
    local rc = exec(compiled, subj, len, pos)
    if rc == PCRE2_ERROR_NOMATCH then
      break
    end
    if rc < 0 then
      release(compiled, compile_once)
      return nil, nil, "pcre_exec() failed: " .. rc
    end

    count = count + 1
    if not out then
      out = {}
    end

    local from = tonumber(ovector[0])
    local to = tonumber(ovector[1])
    if from > cp_pos then
      n = n + 1
      out[n] = sub(subj, cp_pos + 1, from)
    end

    if tfn then
      local caps = collect(compiled, rc, subj)
      n = n + 1
      out[n] = tostring(replace(caps))
    else
      n = expand(parts, rc, subj, out, n)
    end

    cp_pos = to
    pos = to
    if to == from then
      pos = pos + 1
      if pos > len then
        break
      end
    end

    if not global then
      break
    end
  end

  release(compiled, compile_once)

  if count == 0 then
    return subj, 0
  end

  if cp_pos < len then
    n = n + 1
    out[n] = sub(subj, cp_pos + 1)
  end
  return concat(out, "", 1, n), count
end


--- ngx.re.sub(subject, regex, replace, options?) -> new, n
function _M.sub(subj, regex, replace, opts)
  local res, n, err = sub_helper(subj, regex, replace, opts, false)
  return res, n, err
end


--- ngx.re.gsub(subject, regex, replace, options?) -> new, n
function _M.gsub(subj, regex, replace, opts)
  local res, n, err = sub_helper(subj, regex, replace, opts, true)
  return res, n, err
end


-- one step of split: from, to (1-based, `to` exclusive) and the first
-- capture, advancing ctx.pos (0-based here)
local function split_step(compiled, subj, ctx)
  local rc = exec(compiled, subj, #subj, ctx.pos > 0 and ctx.pos or 0)
  if rc == PCRE2_ERROR_NOMATCH then
    return nil
  end
  if rc < 0 then
    return nil, nil, nil, "pcre_exec() failed: " .. rc
  end

  local from = tonumber(ovector[0])
  local to = tonumber(ovector[1])
  if from == to then
    ctx.pos = to + 1
  else
    ctx.pos = to
  end

  if compiled.ncap > 0 and rc > 1 then
    local cfrom = tonumber(ovector[2])
    local capture
    if cfrom >= 0 then
      capture = sub(subj, cfrom + 1, tonumber(ovector[3]))
    end
    return from + 1, to + 1, capture
  end
  return from + 1, to + 1
end


local split_ctx = {}


--- ngx.re.split(subject, regex, options?, ctx?, max?, res?) -> array
function _M.split(subj, regex, opts, ctx, max, res)
  subj = tostring(subj)

  if not ctx then
    ctx = split_ctx
    ctx.pos = 1
  elseif not ctx.pos then
    ctx.pos = 1
  end

  max = max or 0

  if not res then
    local narr = DEFAULT_SPLIT_RES_SIZE
    if max > 0 then
      narr = math_min(narr, max)
    end
    res = table_new(narr, 0)
  elseif type(res) ~= "table" then
    error("res is not a table", 2)
  end

  local len = #subj
  if ctx.pos > len then
    res[1] = nil
    return res
  end

  local compiled, compile_once = get_compiled(regex, opts, 3)
  if not compiled then
    return nil, compile_once
  end

  local sub_idx = ctx.pos
  local res_idx = 0
  local last_empty_match
  local count = 1

  ctx.pos = sub_idx - 1

  while max <= 0 or count < max do
    local from, to, capture, err = split_step(compiled, subj, ctx)
    if err then
      release(compiled, compile_once)
      return nil, err
    end
    if not from then
      break
    end

    if last_empty_match then
      sub_idx = last_empty_match
    end
    if from == to then
      last_empty_match = from
    end

    if from > sub_idx or not last_empty_match then
      count = count + 1
      res_idx = res_idx + 1
      res[res_idx] = sub(subj, sub_idx, from - 1)
      if capture then
        res_idx = res_idx + 1
        res[res_idx] = capture
      end
      sub_idx = to
      if sub_idx > len then
        break
      end
    end
  end

  release(compiled, compile_once)

  if max <= 0 and sub_idx > len then
    -- drop trailing empty fields
    for i = res_idx, 1, -1 do
      if res[i] ~= "" then
        res_idx = i
        break
      end
      res[i] = nil
      if i == 1 then
        res_idx = 0
      end
    end
  else
    res_idx = res_idx + 1
    res[res_idx] = sub(subj, sub_idx)
  end

  res[res_idx + 1] = nil
  return res
end


return _M
