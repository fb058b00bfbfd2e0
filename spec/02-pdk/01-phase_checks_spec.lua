-- The PDK phase matrix through the running gateway (Kong's
-- t/01-pdk/*/00-phase_checks.t, as a table): for every PDK function and
-- every phase a plugin runs in (init_worker, rewrite, access, header_filter,
-- body_filter, log), the function is either allowed (it does not raise the
-- phase error) or raises exactly
--   function cannot be called in <phase> phase (only in: <names>)
-- with the enforced masks of Kong's PDK (kong.md §2.3), names in bit order;
-- functions guarded by check_not_phase(init_worker) raise
--   function cannot be called in init_worker phase (can be called in any
--   phases except: init_worker)
--
-- The calls are made by the pdk-probe fixture plugin (global, so it runs in
-- rewrite too) from the X-Probe request header; init_worker calls come from
-- PDK_PROBE_INIT. Results are read back from the error log.

local helpers = require "spec.helpers"
local cjson = require "cjson.safe"
local probe = require "spec.fixtures.custom_plugins.kong.plugins.pdk-probe.client"


local call = probe.call


-- Kong's phase bits, in bit order (kong/pdk/private/phases.lua)
local BIT_ORDER = {
  "init_worker", "certificate", "client_hello", "rewrite", "access",
  "balancer", "response", "cluster_listener", "header_filter", "body_filter",
  "log", "preread", "error", "admin_api",
}


local function mask(...)
  local set = {}
  for _, n in ipairs({ ... }) do
    set[n] = true
  end
  return set
end


-- the enforced masks (kong.md §2.3)
local REQ = mask("rewrite", "access", "balancer", "response", "header_filter",
                 "body_filter", "log", "error", "admin_api",
                 "cluster_listener")
local NOT_INIT = { except = mask("init_worker") }
local ANY = { any = true }
local REQ_BODY = mask("rewrite", "access", "response", "error", "admin_api")
local RESP_READ = mask("response", "header_filter", "body_filter", "log",
                       "error", "admin_api")
local RESP_WRITE = mask("rewrite", "access", "balancer", "response",
                        "header_filter", "error", "admin_api")
local RESP_BODY = mask("body_filter")
local ACCESS = mask("access")
local RAB = mask("rewrite", "access", "balancer")
local RA = mask("rewrite", "access")
local SVC_RESP = mask("response", "header_filter", "body_filter", "log")
local AUTH_AND_LATER = mask("access", "header_filter", "response",
                            "body_filter", "log")
local ROUTER = mask("access", "header_filter", "response", "body_filter",
                    "log")
local LOG_ONLY = mask("log")
local WITH_CTX = mask("rewrite", "access", "header_filter", "response",
                      "body_filter", "log")


local PHASES = { "rewrite", "access", "header_filter", "body_filter", "log" }


-- { function, mask, args..., disruptive = true (one request per phase) }
local CASES = {
  -- kong.request
  { "kong.request.get_scheme", REQ },
  { "kong.request.get_host", REQ },
  { "kong.request.get_port", NOT_INIT },
  { "kong.request.get_forwarded_scheme", REQ },
  { "kong.request.get_forwarded_host", REQ },
  { "kong.request.get_forwarded_port", REQ },
  { "kong.request.get_forwarded_path", REQ },
  { "kong.request.get_forwarded_prefix", REQ },
  { "kong.request.get_http_version", REQ },
  { "kong.request.get_method", REQ },
  { "kong.request.get_path", REQ },
  { "kong.request.get_raw_path", REQ },
  { "kong.request.get_path_with_query", REQ },
  { "kong.request.get_raw_query", REQ },
  { "kong.request.get_query_arg", REQ, "a" },
  { "kong.request.get_query", REQ },
  { "kong.request.get_header", REQ, "host" },
  { "kong.request.get_headers", REQ },
  { "kong.request.get_raw_body", REQ_BODY },
  { "kong.request.get_body", REQ_BODY },
  { "kong.request.get_start_time", REQ },
  { "kong.request.get_uri_captures", REQ },

  -- kong.response
  { "kong.response.get_status", RESP_READ },
  { "kong.response.get_header", RESP_READ, "content-type" },
  { "kong.response.get_headers", RESP_READ },
  { "kong.response.get_source", RESP_READ },
  { "kong.response.set_status", RESP_WRITE, 200 },
  { "kong.response.set_header", RESP_WRITE, "X-Matrix", "1" },
  { "kong.response.add_header", RESP_WRITE, "X-Matrix", "1" },
  { "kong.response.clear_header", RESP_WRITE, "X-Matrix" },
  { "kong.response.set_headers", RESP_WRITE, { ["X-Matrix"] = "1" } },
  { "kong.response.get_raw_body", RESP_BODY },
  { "kong.response.set_raw_body", RESP_BODY, "matrix" },
  -- exit/error leave the handler when allowed (Kong yields in access and
  -- ngx.exit()s in rewrite), so their mark is the response they produce
  { "kong.response.exit", RESP_WRITE, 299, "matrix", disruptive = 299 },
  { "kong.response.error", RESP_WRITE, 599, disruptive = 599 },

  -- kong.service
  { "kong.service.set_timeouts", ACCESS, 1000, 1000, 1000 },
  { "kong.service.set_retries", ACCESS, 1 },

  -- kong.service.request
  { "kong.service.request.set_scheme", RAB, "http" },
  { "kong.service.request.set_path", RAB, "/matrix" },
  { "kong.service.request.set_header", RAB, "X-Matrix", "1" },
  { "kong.service.request.set_raw_body", RAB, "matrix" },
  { "kong.service.request.enable_buffering", RAB },
  { "kong.service.request.set_raw_query", RA, "a=1" },
  { "kong.service.request.set_method", RA, "GET" },
  { "kong.service.request.set_query", RA, { a = "1" } },
  { "kong.service.request.clear_query_arg", RA, "a" },
  { "kong.service.request.add_header", RA, "X-Matrix", "1" },
  { "kong.service.request.clear_header", RA, "X-Matrix" },
  { "kong.service.request.set_headers", RA, { ["X-Matrix"] = "1" } },
  { "kong.service.request.set_body", RA, { a = "1" }, "application/json" },

  -- kong.service.response
  { "kong.service.response.get_status", SVC_RESP },
  { "kong.service.response.get_headers", SVC_RESP },
  { "kong.service.response.get_header", SVC_RESP, "content-type" },
  { "kong.service.response.get_raw_body", SVC_RESP },
  { "kong.service.response.get_body", SVC_RESP },

  -- kong.client
  { "kong.client.get_ip", NOT_INIT },
  { "kong.client.get_forwarded_ip", NOT_INIT },
  { "kong.client.get_port", NOT_INIT },
  { "kong.client.get_forwarded_port", NOT_INIT },
  { "kong.client.get_credential", AUTH_AND_LATER },
  { "kong.client.get_consumer", AUTH_AND_LATER },
  { "kong.client.load_consumer", AUTH_AND_LATER, "nobody", true },
  { "kong.client.get_protocol", AUTH_AND_LATER },
  { "kong.client.authenticate", ACCESS, { id = "matrix" } },

  -- kong.router
  { "kong.router.get_route", ROUTER },
  { "kong.router.get_service", ROUTER },

  -- kong.log
  { "kong.log.serialize", LOG_ONLY },
  { "kong.log.set_serialize_value", WITH_CTX, "matrix", "1" },
  { "kong.log.notice", ANY, "matrix" },
  { "kong.log.err", ANY, "matrix" },
  { "kong.log.inspect", ANY, "matrix" },

  -- phase-free modules
  { "kong.ip.is_trusted", ANY, "127.0.0.1" },
  { "kong.node.get_id", ANY },
  { "kong.node.get_hostname", ANY },
  { "kong.table.new", ANY, 2, 2 },
  { "kong.table.merge", ANY, { a = 1 }, { b = 2 } },
  { "kong.nginx.get_subsystem", ANY },
}


-- functions whose check was wrong once (fixed); kept empty so a regression
-- can be marked here while it is being fixed
local BUGS = { init_worker = {}, request = {} }


local function names_of(set)
  local out = {}
  for _, n in ipairs(BIT_ORDER) do
    if set[n] then
      out[#out + 1] = n
    end
  end
  return table.concat(out, ", ")
end


-- nil when `phase` is allowed, else the exact error message
local function expected_error(m, phase)
  if m.any then
    return nil
  end
  if m.except then
    if m.except[phase] then
      return "function cannot be called in " .. phase .. " phase (can be "
             .. "called in any phases except: " .. names_of(m.except) .. ")"
    end
    return nil
  end
  if m[phase] then
    return nil
  end
  return "function cannot be called in " .. phase .. " phase (only in: "
         .. names_of(m) .. ")"
end


local function strip_position(msg)
  -- Kong raises from phases.lua, which may prefix "file:line: "
  return (tostring(msg):gsub("^[^\n]-:%d+: ", ""))
end


local function is_phase_error(msg)
  return msg and msg:find("function cannot be called in", 1, true) ~= nil
end


local function check_result(case, phase, r)
  local fn = case[1]
  local want = expected_error(case[2], phase)
  local where = fn .. " in " .. phase
  assert(r, where .. ": no result (the request or the worker failed?)")
  if want then
    assert.is_false(r.ok, where .. " should raise the phase error")
    assert.equal(want, strip_position(r.err), where)
  else
    if not r.ok then
      assert(not is_phase_error(r.err), where .. " must be allowed, got: "
                                         .. tostring(r.err))
    end
  end
end


local function args_of(case)
  local a = {}
  for i = 3, table.maxn(case) do
    a[#a + 1] = case[i]
  end
  return a
end


local function init_calls()
  local list = {}
  for i, case in ipairs(CASES) do
    list[i] = call("init_worker", case[1], unpack(args_of(case)))
  end
  return list
end


describe("PDK phase checks", function()
  local mock

  lazy_setup(function()
    mock = helpers.start_mock_upstream()
    assert(helpers.start_kong({
      plugins = "bundled,pdk-probe",
      lua_package_path = probe.PACKAGE_PATH,
      declarative_config = {
        _format_version = "3.0",
        services = {
          { name = "matrix", url = mock.url,
            routes = { { name = "matrix", paths = { "/" } } } },
        },
        plugins = { { name = "pdk-probe" } },
      },
    }, { env = { PDK_PROBE_INIT = cjson.encode(init_calls()) } }))
  end)

  lazy_teardown(function()
    helpers.stop_kong()
    if mock then
      mock.stop()
    end
  end)


  describe("init_worker", function()
    local results

    lazy_setup(function()
      helpers.wait_until(function()
        results = probe.log_results("init")
        return results[#CASES] ~= nil
      end, 10)
    end)

    for i, case in ipairs(CASES) do
      it(case[1], function()
        if BUGS.init_worker[case[1]] then
          pending(BUGS.init_worker[case[1]])
        end
        check_result(case, "init_worker", results[i])
      end)
    end
  end)


  for _, case in ipairs(CASES) do
    it(case[1] .. " in rewrite, access, header_filter, body_filter, log",
       function()
      if BUGS.request[case[1]] then
        pending(BUGS.request[case[1]])
      end
      local client = helpers.proxy_client()
      if case.disruptive then
        for _, phase in ipairs(PHASES) do
          local res, _, results = probe.send(client,
            { path = "/matrix?a=1", headers = { ["Content-Type"] = "text/plain" },
              body = "x" },
            { call(phase, case[1], unpack(args_of(case))) })
          if results[1] == nil and not expected_error(case[2], phase) then
            -- the call did not return: it must have answered
            assert.equal(case.disruptive, res.status, case[1] .. " in "
                         .. phase .. " answers")
          else
            check_result(case, phase, results[1])
          end
        end
      else
        local calls = {}
        for i, phase in ipairs(PHASES) do
          calls[i] = call(phase, case[1], unpack(args_of(case)))
        end
        local _, _, results = probe.send(client,
          { path = "/matrix?a=1", headers = { ["Content-Type"] = "text/plain" },
            body = "x" }, calls)
        for i, phase in ipairs(PHASES) do
          check_result(case, phase, results[i])
        end
      end
      client:close()
    end)
  end


  it("the worker survived every call", function()
    local client = helpers.proxy_client()
    local res = client:get("/matrix")
    assert.res_status(200, res)
    client:close()
  end)
end)
