-- Wall-clock time for the ngx shim: ngx.now, ngx.time, ngx.today,
-- ngx.localtime, ngx.utctime, ngx.http_time, ngx.cookie_time,
-- ngx.parse_http_time and ngx.update_time.
--
-- nginx caches the time once per event-loop iteration. The runtime gets the
-- same behaviour by calling `update()` at the top of every tick: from the
-- first call on, now()/time() and the formatters return the cached value
-- until the next update()/update_time(). Before that (plain luajit, tools,
-- specs) every call reads the clock, so the module also works standalone.
-- UTC formatting is computed arithmetically (no os.date, no locale);
-- parse_http_time is a port of nginx's ngx_parse_http_time (RFC 1123,
-- RFC 850 and asctime forms; nil on bad input).

local ffi = require "ffi"


local C = ffi.C
local ffi_new = ffi.new
local floor = math.floor
local os_date = os.date
local byte = string.byte
local fmt = string.format
local type = type
local tonumber = tonumber
local tostring = tostring
local error = error


ffi.cdef [[
int sl_ngx_gettimeofday(long *tv, void *tz) asm("gettimeofday");
]]


local WEEKDAYS = { "Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat" }
local MONTHS = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
                 "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" }
local MDAYS = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 }
local SECS_PER_DAY = 86400
local COOKIE_4DIGIT_YEAR = 2037   -- nginx: 2-digit years up to 2037


local tv = ffi_new("long[2]")


local _M = {}


local cached = false       -- true once the runtime drives update()
local cached_sec = 0
local cached_now = 0


local function read_clock()
  C.sl_ngx_gettimeofday(tv, nil)
  local sec = tonumber(tv[0])
  local msec = floor(tonumber(tv[1]) / 1000)
  cached_sec = sec
  cached_now = sec + msec / 1000
end


--- Refresh the cached time (ngx.update_time).
function _M.update_time()
  read_clock()
end


--- Runtime hook, once per event-loop tick: refresh the cache and keep
-- serving cached values until the next call.
function _M.update()
  cached = true
  read_clock()
end


--- Leave cached mode (back to reading the clock on every call).
function _M.uncache()
  cached = false
end


local function current()
  if not cached then
    read_clock()
  end
end


--- Seconds since the epoch with millisecond precision (ngx.now).
function _M.now()
  if not cached then
    read_clock()
  end
  return cached_now
end


--- Whole seconds since the epoch (ngx.time).
function _M.time()
  if not cached then
    read_clock()
  end
  return cached_sec
end


--- Local date "yyyy-mm-dd" (ngx.today).
function _M.today()
  current()
  return os_date("%Y-%m-%d", cached_sec)
end


--- Local time "yyyy-mm-dd hh:mm:ss" (ngx.localtime).
function _M.localtime()
  current()
  return os_date("%Y-%m-%d %H:%M:%S", cached_sec)
end


-- days since 1970-01-01 -> year, month (1-12), day (1-31); proleptic
-- Gregorian, valid for negative days too
local function civil(days)
  local z = days + 719468
  local era = floor(z / 146097)
  local doe = z - era * 146097
  local yoe = floor((doe - floor(doe / 1460) + floor(doe / 36524)
                     - floor(doe / 146096)) / 365)
  local doy = doe - (365 * yoe + floor(yoe / 4) - floor(yoe / 100))
  local mp = floor((5 * doy + 2) / 153)
  local d = doy - floor((153 * mp + 2) / 5) + 1
  local m = mp < 10 and mp + 3 or mp - 9
  local y = yoe + era * 400
  if m <= 2 then
    y = y + 1
  end
  return y, m, d
end


-- seconds -> y, mon, mday, hour, min, sec, wday (1 = Sunday), in UTC
local function gmtime(t)
  local days = floor(t / SECS_PER_DAY)
  local rem = t - days * SECS_PER_DAY
  local y, m, d = civil(days)
  local hour = floor(rem / 3600)
  local min = floor((rem - hour * 3600) / 60)
  local sec = rem - hour * 3600 - min * 60
  local wday = (days + 4) % 7 + 1   -- 1970-01-01 was a Thursday
  return y, m, d, hour, min, sec, wday
end


--- UTC time "yyyy-mm-dd hh:mm:ss" (ngx.utctime).
function _M.utctime()
  current()
  local y, m, d, hh, mm, ss = gmtime(cached_sec)
  return fmt("%04d-%02d-%02d %02d:%02d:%02d", y, m, d, hh, mm, ss)
end


local function check_sec(sec)
  local n = tonumber(sec)
  if not n then
    error("bad argument #1 (number expected, got " .. type(sec) .. ")", 3)
  end
  -- C's (time_t) cast truncates towards zero
  if n < 0 then
    return -floor(-n)
  end
  return floor(n)
end


--- "Thu, 18 Nov 2010 11:27:35 GMT" (ngx.http_time).
function _M.http_time(sec)
  local y, m, d, hh, mm, ss, wd = gmtime(check_sec(sec))
  return fmt("%s, %02d %s %4d %02d:%02d:%02d GMT", WEEKDAYS[wd], d,
             MONTHS[m], y, hh, mm, ss)
end


--- "Thu, 18-Nov-10 11:27:35 GMT" (ngx.cookie_time); 4-digit years after
-- 2037, as nginx.
function _M.cookie_time(sec)
  local y, m, d, hh, mm, ss, wd = gmtime(check_sec(sec))
  if y > COOKIE_4DIGIT_YEAR then
    return fmt("%s, %02d-%s-%d %02d:%02d:%02d GMT", WEEKDAYS[wd], d,
               MONTHS[m], y, hh, mm, ss)
  end
  return fmt("%s, %02d-%s-%02d %02d:%02d:%02d GMT", WEEKDAYS[wd], d,
             MONTHS[m], y % 100, hh, mm, ss)
end


-- byte at 0-based position i of s as a digit value, or nil
local function digit(s, i)
  local c = byte(s, i + 1)
  if c and c >= 48 and c <= 57 then
    return c - 48
  end
  return nil
end


local function digits2(s, i)
  local a, b = digit(s, i), digit(s, i + 1)
  if not a or not b then
    return nil
  end
  return a * 10 + b
end


local function month_of(s, p)
  local c, c1, c2 = byte(s, p + 1, p + 3)
  if c == 74 then                       -- J
    if c1 == 97 then return 0 end       -- Jan
    if c2 == 110 then return 5 end      -- Jun
    return 6                            -- Jul
  elseif c == 70 then return 1          -- F
  elseif c == 77 then                   -- M
    if c2 == 114 then return 2 end      -- Mar
    return 4                            -- May
  elseif c == 65 then                   -- A
    if c1 == 112 then return 3 end      -- Apr
    return 7                            -- Aug
  elseif c == 83 then return 8          -- S
  elseif c == 79 then return 9          -- O
  elseif c == 78 then return 10         -- N
  elseif c == 68 then return 11         -- D
  end
  return nil
end


local RFC822, RFC850, ISOC = 1, 2, 3


-- port of nginx's ngx_parse_http_time; positions are 0-based like the C
local function parse_http_time(s)
  local len = #s
  local p = 0
  local form

  while p < len do
    local c = byte(s, p + 1)
    if c == 44 then                     -- ','
      break
    end
    if c == 32 then
      form = ISOC
      break
    end
    p = p + 1
  end

  p = p + 1
  while p < len and byte(s, p + 1) == 32 do
    p = p + 1
  end

  if len - p < 18 then
    return nil
  end

  local day
  if form ~= ISOC then
    day = digits2(s, p)
    if not day then
      return nil
    end
    p = p + 2
    local c = byte(s, p + 1)
    if c == 32 then
      if len - p < 18 then
        return nil
      end
      form = RFC822
    elseif c == 45 then                 -- '-'
      form = RFC850
    else
      return nil
    end
    p = p + 1
  end

  local month = month_of(s, p)
  if not month then
    return nil
  end
  p = p + 3

  local c = byte(s, p + 1)
  if (form == RFC822 and c ~= 32) or (form == RFC850 and c ~= 45) then
    return nil
  end
  p = p + 1

  local year
  if form == RFC822 then
    local hi, lo = digits2(s, p), digits2(s, p + 2)
    if not hi or not lo then
      return nil
    end
    year = hi * 100 + lo
    p = p + 4
  elseif form == RFC850 then
    year = digits2(s, p)
    if not year then
      return nil
    end
    year = year + (year < 70 and 2000 or 1900)
    p = p + 2
  end

  if form == ISOC then
    if byte(s, p + 1) == 32 then
      p = p + 1
    end
    day = digit(s, p)
    if not day then
      return nil
    end
    p = p + 1
    if byte(s, p + 1) ~= 32 then
      local d2 = digit(s, p)
      if not d2 then
        return nil
      end
      day = day * 10 + d2
      p = p + 1
    end
    if len - p < 14 then
      return nil
    end
  end

  if byte(s, p + 1) ~= 32 then
    return nil
  end
  p = p + 1

  local hour = digits2(s, p)
  if not hour or byte(s, p + 3) ~= 58 then   -- ':'
    return nil
  end
  p = p + 3
  local min = digits2(s, p)
  if not min or byte(s, p + 3) ~= 58 then
    return nil
  end
  p = p + 3
  local sec = digits2(s, p)
  if not sec then
    return nil
  end

  if form == ISOC then
    p = p + 2
    if byte(s, p + 1) ~= 32 then
      return nil
    end
    p = p + 1
    local hi, lo = digits2(s, p), digits2(s, p + 2)
    if not hi or not lo then
      return nil
    end
    year = hi * 100 + lo
  end

  if hour > 23 or min > 59 or sec > 59 then
    return nil
  end

  if day == 29 and month == 1 then
    if year % 4 ~= 0 or (year % 100 == 0 and year % 400 ~= 0) then
      return nil
    end
  elseif day > MDAYS[month + 1] then
    return nil
  end

  -- Gauss' formula with the year starting on March 1st, as nginx
  month = month - 1
  if month <= 0 then
    month = month + 12
    year = year - 1
  end

  local days = 365 * year + floor(year / 4) - floor(year / 100)
               + floor(year / 400) + floor(367 * month / 12) - 30
               + day - 1 - 719527 + 31 + 28

  return days * SECS_PER_DAY + hour * 3600 + min * 60 + sec
end


--- Parse an HTTP date into seconds since the epoch (ngx.parse_http_time);
-- nil when the string is not a valid date.
function _M.parse_http_time(str)
  local t = type(str)
  if t == "number" then
    str = tostring(str)
  elseif t ~= "string" then
    error("bad argument #1 to 'parse_http_time' (string expected, got "
          .. t .. ")", 2)
  end
  return parse_http_time(str)
end


return _M
