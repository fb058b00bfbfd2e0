-- sluice.ngx.shdict (ngx.shared.DICT) against core/lua/sl_shdict.c built as a
-- shared object: resty.core's return values and errors, flags, expiry on an
-- injected clock, lists, get_keys, and a fork test through the FFI.

local ffi = require "ffi"
local shdict = require "sluice.ngx.shdict"


-- the clock callback is called from C inside FFI calls: keep them out of
-- JIT-compiled traces
jit.off()


ffi.cdef [[
sl_shdict_t *sl_shdict_create(const char *name, size_t size, char *err,
    size_t errlen);
typedef uint64_t (*sl_shdict_clock_cb)(void);
void sl_shdict_set_clock(sl_shdict_clock_cb now_ms);
void sl_shdict_destroy_all(void);
int fork(void);
int waitpid(int pid, int *status, int options);
void _exit(int status);
]]


local ROOT = debug.getinfo(1, "S").source:sub(2):match("^(.*)/spec/01%-unit/")
             or "."


local function build_lib()
  local dir = os.tmpname()
  os.remove(dir)
  os.execute("mkdir -p " .. dir)
  local so = dir .. "/libsl_shdict.so"
  local cmd = "cc -std=c11 -D_GNU_SOURCE -shared -fPIC -I" .. ROOT .. "/core "
              .. ROOT .. "/core/lua/sl_shdict.c -o " .. so .. " -lpthread"
  local ok = os.execute(cmd)
  assert(ok == 0 or ok == true, "cannot build " .. so)
  return ffi.load(so), dir
end


describe("sluice.ngx.shdict", function()
  local lib, dir, shared, dict, now, clock_cb

  local function create(name, size)
    local err = ffi.new("char[256]")
    local z = lib.sl_shdict_create(name, size, err, 256)
    assert(z ~= nil, ffi.string(err))
  end

  setup(function()
    lib, dir = build_lib()
    now = 1000000
    clock_cb = ffi.cast("sl_shdict_clock_cb", function() return now end)
    lib.sl_shdict_set_clock(clock_cb)
    create("dogs", 1024 * 1024)
    create("cats", 64 * 1024)
    create("tiny", 8192)
    shared = shdict.init(lib)
    dict = shared.dogs
  end)

  teardown(function()
    lib.sl_shdict_set_clock(nil)
    clock_cb:free()
    lib.sl_shdict_destroy_all()
    os.execute("rm -rf " .. dir)
  end)

  before_each(function()
    shared.dogs:flush_all()
    shared.dogs:flush_expired()
  end)

  describe("ngx.shared", function()
    it("holds every zone, eagerly", function()
      local names = {}
      for name in pairs(shared) do
        names[#names + 1] = name
      end
      table.sort(names)
      assert.same({ "cats", "dogs", "tiny" }, names)
      assert.is_nil(shared.nonexistent)
    end)

    it("finds a zone created after init lazily", function()
      create("late", 8192)
      assert.is_table(shared.late)
      assert.equal(shared.late, shared.late)
      assert.is_true(shared.late:set("k", 1))
      assert.equal(1, shared.late:get("k"))
    end)

    it("exposes capacity and free_space", function()
      assert.equal(1024 * 1024, dict:capacity())
      assert.equal(8192, shared.tiny:capacity())
      local free = dict:free_space()
      assert.is_true(free > 1000000 and free < 1024 * 1024)
      dict:set("x", ("x"):rep(10000))
      assert.is_true(dict:free_space() <= free - 10000)
    end)
  end)

  describe("argument errors", function()
    it("raises on a bad zone", function()
      for _, m in ipairs { "get", "get_stale", "set", "safe_set", "add",
                           "safe_add", "replace", "delete", "incr", "lpush",
                           "rpush", "lpop", "rpop", "llen", "ttl", "expire",
                           "flush_all", "flush_expired", "get_keys",
                           "capacity", "free_space" } do
        assert.has_error(function() dict[m]("k") end, "bad \"zone\" argument")
        assert.has_error(function() dict[m]({}, "k") end,
                         "bad \"zone\" argument")
      end
    end)

    it("returns nil key, empty key and key too long", function()
      local long = ("k"):rep(65536)
      for _, m in ipairs { "get", "get_stale", "set", "add", "replace",
                           "delete", "lpush", "lpop", "llen", "ttl" } do
        local v, err = dict[m](dict, nil, 1)
        assert.is_nil(v)
        assert.equal("nil key", err)
        v, err = dict[m](dict, "", 1)
        assert.is_nil(v)
        assert.equal("empty key", err)
        v, err = dict[m](dict, long, 1)
        assert.is_nil(v)
        assert.equal("key too long", err)
      end
      local v, err = dict:incr(nil, 1)
      assert.same({ nil, "nil key" }, { v, err })
      assert.same({ nil, "empty key" }, { dict:expire("", 1) })
      assert.is_true(dict:set(("k"):rep(65535), 1))
    end)

    it("raises on keys that are neither strings nor numbers", function()
      assert.has_error(function() dict:get({}) end)
      assert.has_error(function() dict:set(true, 1) end)
    end)

    it("turns number keys into strings", function()
      assert.is_true(dict:set(42, "answer"))
      assert.equal("answer", dict:get("42"))
      assert.equal("answer", dict:get(42))
    end)

    it("raises on bad exptime, flags and incr arguments", function()
      assert.has_error(function() dict:set("k", 1, -1) end,
                       "bad \"exptime\" argument")
      assert.has_error(function() dict:set("k", 1, "x") end,
                       "bad \"exptime\" argument")
      assert.has_error(function() dict:expire("k") end,
                       "bad \"exptime\" argument")
      assert.has_error(function() dict:incr("k", 1, 0, -1) end,
                       "bad \"init_ttl\" argument")
      assert.has_error(function() dict:incr("k", 1, nil, 10) end,
                       "must provide \"init\" when providing \"init_ttl\"")
      assert.has_error(function() dict:incr("k", 1, "x") end,
                       "bad init arg: number expected, got string")
      assert.has_error(function() dict:incr("k", {}) end)
    end)

    it("rejects values of other types", function()
      assert.same({ nil, "bad value type" }, { dict:set("k", {}) })
      assert.same({ nil, "bad value type" }, { dict:lpush("k", true) })
    end)
  end)

  describe("values", function()
    it("stores and returns each type with flags", function()
      local cases = {
        { "s", "hello", nil },
        { "e", "", nil },
        { "bin", "a\0b\255", 3 },
        { "i", 42, nil },
        { "f", -1.5, 0 },
        { "big", 2 ^ 53, 4294967295 },
        { "t", true, 1 },
        { "false", false, nil },
        { "long", ("x"):rep(100000), 9 },
      }
      for _, c in ipairs(cases) do
        local ok, err, forcible = dict:set(c[1], c[2], 0, c[3])
        assert.same({ true, nil, false }, { ok, err, forcible })
        local v, flags = dict:get(c[1])
        assert.equal(c[2], v)
        if c[3] and c[3] ~= 0 then
          assert.equal(c[3], flags)
        else
          assert.is_nil(flags)
        end
        assert.equal(1, select("#", dict:get(c[1])) + (flags and -1 or 0))
      end
    end)

    it("returns a single nil for a missing key", function()
      assert.equal(1, select("#", dict:get("missing")))
      assert.is_nil(dict:get("missing"))
    end)

    it("add, replace, safe_add and set nil", function()
      assert.same({ true, nil, false }, { dict:add("k", 1) })
      assert.same({ false, "exists", false }, { dict:add("k", 2) })
      assert.same({ false, "exists", false }, { dict:safe_add("k", 2) })
      assert.same({ true, nil, false }, { dict:replace("k", 3) })
      assert.equal(3, dict:get("k"))
      assert.same({ false, "not found", false }, { dict:replace("nope", 1) })
      assert.same({ true, nil, false }, { dict:set("k", nil) })
      assert.is_nil(dict:get("k"))
      assert.same({ true, nil, false }, { dict:delete("k") })
    end)

    it("incr", function()
      assert.same({ nil, "not found" }, { dict:incr("n", 1) })
      assert.same({ 11, nil, false }, { dict:incr("n", 1, 10) })
      assert.same({ 16 }, { dict:incr("n", 5) })
      assert.same({ 15.5 }, { dict:incr("n", -0.5) })
      assert.same({ 16.5, nil, false }, { dict:incr("n", 1, 100) })
      assert.equal(17.5, dict:incr("n", "1"))
      dict:set("s", "x")
      assert.same({ nil, "not a number" }, { dict:incr("s", 1) })
      assert.same({ nil, "not a number" }, { dict:incr("s", 1, 0) })
    end)
  end)

  describe("expiry", function()
    it("expires values, ttl and expire", function()
      assert.is_true(dict:set("k", "v", 1.5, 7))
      assert.equal(1.5, dict:ttl("k"))
      now = now + 500
      assert.equal(1, dict:ttl("k"))
      assert.is_true(dict:expire("k", 10))
      assert.equal(10, dict:ttl("k"))
      assert.is_true(dict:expire("k", 0))
      assert.equal(0, dict:ttl("k"))
      assert.is_true(dict:expire("k", 0.1))
      now = now + 100
      assert.same({ "v", 7, true }, { dict:get_stale("k") })
      assert.same({ nil, "not found" }, { dict:ttl("k") })
      assert.same({ nil, "not found" }, { dict:expire("k", 1) })
      assert.is_nil(dict:get("k"))
      assert.same({ nil, "not found" }, { dict:ttl("missing") })
    end)

    it("get_stale on a live value", function()
      dict:set("k", 5)
      assert.same({ 5, nil, false }, { dict:get_stale("k") })
      assert.is_nil(dict:get_stale("missing"))
    end)

    it("incr with init_ttl", function()
      assert.same({ 2, nil, false }, { dict:incr("c", 1, 1, 0.2) })
      assert.equal(0.2, dict:ttl("c"))
      now = now + 200
      assert.same({ nil, "not found" }, { dict:incr("c", 1) })
      assert.same({ 1, nil, false }, { dict:incr("c", 1, 0) })
      assert.equal(0, dict:ttl("c"))
    end)

    it("add over an expired key", function()
      dict:set("k", 1, 0.01)
      now = now + 10
      assert.same({ false, "not found", false }, { dict:replace("k", 2) })
      assert.same({ true, nil, false }, { dict:add("k", 2) })
    end)

    it("flush_all and flush_expired", function()
      for i = 1, 10 do
        dict:set("k" .. i, i)
      end
      dict:flush_all()
      assert.same({ 5, nil, true }, { dict:get_stale("k5") })
      assert.same({}, dict:get_keys())
      assert.equal(3, dict:flush_expired(3))
      assert.equal(7, dict:flush_expired())
      assert.equal(0, dict:flush_expired(0))
      assert.is_nil(dict:get("k1"))
      assert.is_nil(dict:get_stale("k5"))
    end)
  end)

  describe("eviction", function()
    it("set evicts LRU items (forcible); safe_set does not", function()
      local tiny = shared.tiny
      tiny:flush_all()
      tiny:flush_expired()
      local val = ("v"):rep(500)
      local forced
      for i = 1, 50 do
        local ok, err, forcible = tiny:set("k" .. i, val)
        assert.same({ true, nil }, { ok, err })
        if forcible then
          forced = i
          break
        end
      end
      assert.is_number(forced)
      assert.is_nil(tiny:get("k1"))
      assert.equal(val, tiny:get("k" .. forced))

      local ok, err, forcible
      for i = 1, 50 do
        ok, err, forcible = tiny:safe_set("s" .. i, val)
        if not ok then
          break
        end
      end
      assert.same({ false, "no memory", false }, { ok, err, forcible })
      assert.same({ false, "no memory", false },
                  { tiny:safe_add("sa", val) })
      assert.same({ false, "no memory", false },
                  { tiny:set("huge", ("h"):rep(9000)) })
    end)
  end)

  describe("lists", function()
    it("push, pop and llen", function()
      assert.equal(0, dict:llen("l"))
      assert.is_nil(dict:lpop("l"))
      assert.equal(1, dict:lpush("l", "b"))
      assert.equal(2, dict:lpush("l", "a"))
      assert.equal(3, dict:rpush("l", 3))
      assert.equal(4, dict:rpush("l", ("z"):rep(10000)))
      assert.equal(4, dict:llen("l"))
      assert.equal("a", dict:lpop("l"))
      assert.equal(("z"):rep(10000), dict:rpop("l"))
      assert.equal(3, dict:rpop("l"))
      assert.equal("b", dict:rpop("l"))
      assert.is_nil(dict:rpop("l"))
      assert.equal(0, dict:llen("l"))
    end)

    it("value not a list / value is a list", function()
      dict:set("v", 1)
      assert.same({ nil, "value not a list" }, { dict:lpush("v", 1) })
      assert.same({ nil, "value not a list" }, { dict:rpop("v") })
      assert.same({ nil, "value not a list" }, { dict:llen("v") })
      dict:rpush("l", 1)
      assert.same({ nil, "value is a list" }, { dict:get("l") })
      assert.same({ nil, "not a number" }, { dict:incr("l", 1) })
      assert.same({ false, "exists", false }, { dict:add("l", 1) })
      assert.same({ true, nil, false }, { dict:set("l", "plain") })
      assert.equal("plain", dict:get("l"))
    end)

    it("lists expire", function()
      dict:rpush("l", 1)
      assert.is_true(dict:expire("l", 0.01))
      now = now + 10
      assert.equal(0, dict:llen("l"))
      assert.equal(1, dict:rpush("l", 2))
    end)
  end)

  describe("get_keys", function()
    it("lists live keys, max_count defaults to 1024, 0 = all", function()
      for i = 1, 1100 do
        dict:set("k" .. i, i)
      end
      dict:set("short", 1, 0.01)
      assert.equal(1024, #dict:get_keys())
      assert.equal(1101, #dict:get_keys(0))
      assert.same({ "short", "k1100" }, dict:get_keys(2))
      now = now + 10
      assert.equal(1100, #dict:get_keys(0))
      local seen = {}
      for _, k in ipairs(dict:get_keys(0)) do
        seen[k] = true
      end
      assert.is_true(seen.k1 and seen.k1100)
    end)

    it("returns an empty table for an empty zone", function()
      assert.same({}, dict:get_keys())
    end)
  end)

  describe("processes", function()
    it("children forked after creation share the zone", function()
      local cats = shared.cats
      cats:set("hits", 0)
      local pids = {}
      for i = 1, 4 do
        local pid = ffi.C.fork()
        if pid == 0 then
          for _ = 1, 500 do
            cats:incr("hits", 1)
          end
          ffi.C._exit(0)
        end
        pids[i] = pid
      end
      local st = ffi.new("int[1]")
      for _, pid in ipairs(pids) do
        ffi.C.waitpid(pid, st, 0)
        assert.equal(0, st[0])
      end
      assert.equal(2000, cats:get("hits"))
    end)
  end)
end)
