-- The names the untrusted-Lua sandbox lets through, as Kong's
-- `kong/tools/sandbox/environment/lua.lua` and `require/lua.lua`: data for
-- kong.tools.sandbox, which builds read-only copies of the library tables
-- out of them. Names absent from the running LuaJIT (e.g. `table.pack`
-- without 5.2 compatibility) are skipped.
--
-- Left out on purpose: load, loadstring, loadfile, dofile, require (the
-- sandbox brings its own), getfenv/setfenv, get/setmetatable, raw*,
-- collectgarbage, module, debug.*, package.*, string.dump, most of io.* and
-- os.*, math.randomseed.


local _M = {}


-- Globals and `lib.member` names of the base environment.
_M.LUA = [[
_VERSION assert error ipairs next pairs pcall print select tonumber tostring
type unpack xpcall

bit.arshift bit.band bit.bnot bit.bor bit.bswap bit.bxor bit.lshift bit.rol
bit.ror bit.rshift bit.tobit bit.tohex

coroutine.create coroutine.resume coroutine.running coroutine.status
coroutine.wrap coroutine.yield

io.type

jit.arch jit.os jit.version jit.version_num

math.abs math.acos math.asin math.atan math.atan2 math.ceil math.cos
math.cosh math.deg math.exp math.floor math.fmod math.frexp math.huge
math.ldexp math.log math.log10 math.max math.min math.modf math.pi math.pow
math.rad math.random math.sin math.sinh math.sqrt math.tan math.tanh

os.clock os.date os.difftime os.time

string.byte string.char string.find string.format string.gmatch string.gsub
string.len string.lower string.match string.rep string.reverse string.sub
string.upper

table.clear table.clone table.concat table.foreach table.foreachi table.getn
table.insert table.isarray table.isempty table.maxn table.move table.new
table.nkeys table.pack table.remove table.sort table.unpack
]]


-- Modules `sandbox_lua` chunks may require.
_M.LUA_REQUIRES = [[
bit string.buffer table.clear table.clone table.isarray table.isempty
table.new table.nkeys
]]


return _M
