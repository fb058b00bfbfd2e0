-- A small pretty-printer for kong.log.inspect: tables sorted by key, cycles
-- marked, strings quoted.

local function render(v, depth, seen, out, indent)
  local t = type(v)
  if t == "string" then
    out[#out + 1] = string.format("%q", v)
  elseif t ~= "table" then
    out[#out + 1] = tostring(v)
  elseif seen[v] then
    out[#out + 1] = "<cycle>"
  elseif depth > 8 then
    out[#out + 1] = "{...}"
  else
    seen[v] = true
    local keys = {}
    for k in pairs(v) do
      keys[#keys + 1] = k
    end
    table.sort(keys, function(a, b)
      return tostring(a) < tostring(b)
    end)
    out[#out + 1] = "{"
    for i, k in ipairs(keys) do
      out[#out + 1] = (i > 1 and "," or "") .. "\n" .. indent .. "  "
      if type(k) == "string" and k:match("^[%a_][%w_]*$") then
        out[#out + 1] = k
      else
        out[#out + 1] = "["
        render(k, depth + 1, seen, out, indent .. "  ")
        out[#out + 1] = "]"
      end
      out[#out + 1] = " = "
      render(v[k], depth + 1, seen, out, indent .. "  ")
    end
    out[#out + 1] = (#keys > 0 and ("\n" .. indent) or "") .. "}"
    seen[v] = nil
  end
end


return function(v)
  local out = {}
  render(v, 0, {}, out, "")
  return table.concat(out)
end
