-- HTTP/1.1 server strictness: requests that could be used for request
-- smuggling or that break the grammar are refused with the right status,
-- the connection is closed after the error, and the worker keeps serving
-- (a normal request on a new connection still gets 200).

local helpers = require "spec.helpers"
local raw = require "spec.fixtures.server.raw_http"
local cjson = require "cjson.safe"


local function req(head_lines, body)
  return table.concat(head_lines, "\r\n") .. "\r\n\r\n" .. (body or "")
end


-- Each case: name, bytes, expected status (a number or a set of numbers).
-- `keep = true` for accepted requests (connection stays open).
local CASES = {
  -- framing
  { "Transfer-Encoding together with Content-Length",
    req({ "POST /anything HTTP/1.1", "Host: a", "Content-Length: 5",
          "Transfer-Encoding: chunked" }, "0\r\n\r\n"), 400 },
  { "Content-Length then Transfer-Encoding (header order reversed)",
    req({ "POST /anything HTTP/1.1", "Host: a", "Transfer-Encoding: chunked",
          "Content-Length: 3" }, "0\r\n\r\n"), 400 },
  { "two differing Content-Length headers",
    req({ "POST /anything HTTP/1.1", "Host: a", "Content-Length: 5",
          "Content-Length: 6" }, "hello!"), 400 },
  { "a differing Content-Length list in one header",
    req({ "POST /anything HTTP/1.1", "Host: a", "Content-Length: 5, 6" },
        "hello!"), 400 },
  { "Content-Length: +5",
    req({ "POST /anything HTTP/1.1", "Host: a", "Content-Length: +5" },
        "hello"), 400 },
  { "Content-Length: -1",
    req({ "POST /anything HTTP/1.1", "Host: a", "Content-Length: -1" },
        "hello"), 400 },
  { "Content-Length: 5 5",
    req({ "POST /anything HTTP/1.1", "Host: a", "Content-Length: 5 5" },
        "hello"), 400 },
  { "Content-Length: abc",
    req({ "POST /anything HTTP/1.1", "Host: a", "Content-Length: abc" },
        "hello"), 400 },
  { "Content-Length: 0x5",
    req({ "POST /anything HTTP/1.1", "Host: a", "Content-Length: 0x5" },
        "hello"), 400 },
  { "empty Content-Length",
    req({ "POST /anything HTTP/1.1", "Host: a", "Content-Length:" },
        "hello"), 400 },
  { "huge Content-Length (overflows 64 bits)",
    req({ "POST /anything HTTP/1.1", "Host: a",
          "Content-Length: 99999999999999999999999" }, "hello"), 400 },
  { "bad chunk size 'zz'",
    req({ "POST /anything HTTP/1.1", "Host: a", "Transfer-Encoding: chunked" },
        "zz\r\nhello\r\n0\r\n\r\n"), 400 },
  { "chunk size overflow",
    req({ "POST /anything HTTP/1.1", "Host: a", "Transfer-Encoding: chunked" },
        "fffffffffffffffffffff\r\nhello\r\n0\r\n\r\n"), 400 },
  { "negative chunk size",
    req({ "POST /anything HTTP/1.1", "Host: a", "Transfer-Encoding: chunked" },
        "-5\r\nhello\r\n0\r\n\r\n"), 400 },
  { "missing CRLF after chunk data",
    req({ "POST /anything HTTP/1.1", "Host: a", "Transfer-Encoding: chunked" },
        "5\r\nhelloXX0\r\n\r\n"), 400 },
  { "Transfer-Encoding: gzip, chunked",
    req({ "POST /anything HTTP/1.1", "Host: a",
          "Transfer-Encoding: gzip, chunked" }, "0\r\n\r\n"), 501 },
  { "Transfer-Encoding: identity",
    req({ "POST /anything HTTP/1.1", "Host: a",
          "Transfer-Encoding: identity" }, "0\r\n\r\n"), 501 },
  { "Transfer-Encoding: chunked, chunked",
    req({ "POST /anything HTTP/1.1", "Host: a",
          "Transfer-Encoding: chunked, chunked" }, "0\r\n\r\n"), 501 },
  { "Transfer-Encoding: xchunked",
    req({ "POST /anything HTTP/1.1", "Host: a",
          "Transfer-Encoding: xchunked" }, "0\r\n\r\n"), 501 },
  { "HTTP/1.0 with Transfer-Encoding",
    req({ "POST /anything HTTP/1.0", "Host: a", "Transfer-Encoding: chunked" },
        "0\r\n\r\n"), 400 },

  -- tokens and header syntax
  { "invalid token char in the method",
    req({ "G(T /anything HTTP/1.1", "Host: a" }), 400 },
  { "control char in the method",
    req({ "GE\1T /anything HTTP/1.1", "Host: a" }), 400 },
  { "invalid token char in a header name",
    req({ "GET /anything HTTP/1.1", "Host: a", "X@Bad: 1" }), 400 },
  { "space inside a header name",
    req({ "GET /anything HTTP/1.1", "Host: a", "X Bad: 1" }), 400 },
  { "space before the colon",
    req({ "GET /anything HTTP/1.1", "Host: a", "X-Test : 1" }), 400 },
  { "space before the colon of Transfer-Encoding",
    req({ "POST /anything HTTP/1.1", "Host: a", "Content-Length: 5",
          "Transfer-Encoding : chunked" }, "0\r\n\r\n"), 400 },
  { "tab before the colon",
    req({ "GET /anything HTTP/1.1", "Host: a", "X-Test\t: 1" }), 400 },
  { "obs-fold (continuation line)",
    req({ "GET /anything HTTP/1.1", "Host: a", "X-Test: one",
          "  two" }), 400 },
  { "obs-fold with a tab",
    req({ "GET /anything HTTP/1.1", "Host: a", "X-Test: one",
          "\ttwo" }), 400 },
  { "NUL in a header value",
    req({ "GET /anything HTTP/1.1", "Host: a", "X-Test: a\0b" }), 400 },
  { "bare CR in a header value",
    req({ "GET /anything HTTP/1.1", "Host: a", "X-Test: a\rb" }), 400 },
  { "header line without a colon",
    req({ "GET /anything HTTP/1.1", "Host: a", "X-Test" }), 400 },
  { "whitespace before the first header (obs-fold)",
    req({ "GET /anything HTTP/1.1", " Host: a" }), 400 },
  { "a space inside the request target",
    req({ "GET /any thing HTTP/1.1", "Host: a" }), 400 },
  { "empty header name",
    req({ "GET /anything HTTP/1.1", "Host: a", ": value" }), 400 },

  -- Host
  { "HTTP/1.1 without Host",
    req({ "GET /anything HTTP/1.1", "X-Test: 1" }), 400 },
  { "two Host headers",
    req({ "GET /anything HTTP/1.1", "Host: a", "Host: b" }), 400 },

  -- versions
  { "HTTP/2.0 request line", req({ "GET /anything HTTP/2.0", "Host: a" }),
    505 },
  { "HTTP/1.2 request line", req({ "GET /anything HTTP/1.2", "Host: a" }),
    505 },
  { "HTTP/3.0 request line", req({ "GET /anything HTTP/3.0", "Host: a" }),
    505 },
  { "garbage version", req({ "GET /anything HTTQ/1.1", "Host: a" }), 400 },

  -- Expect
  { "unknown Expect", req({ "GET /anything HTTP/1.1", "Host: a",
                            "Expect: something-else" }), 417 },
}


describe("HTTP/1.1 strictness", function()
  local mock

  lazy_setup(function()
    mock = helpers.start_mock_upstream()
    assert(helpers.start_kong({
      worker_processes = 1,
      declarative_config = {
        _format_version = "3.0",
        services = {
          { name = "echo", url = mock.url,
            routes = { { name = "all", paths = { "/" } } } },
        },
      },
    }))
  end)

  lazy_teardown(function()
    helpers.stop_kong()
    if mock then
      mock.stop()
    end
  end)

  it("serves a normal request (sanity)", function()
    assert.equal(200, raw.normal_status("/anything"))
  end)

  for _, case in ipairs(CASES) do
    local name, bytes, expected = case[1], case[2], case[3]
    it(("%s -> %d, connection closed, worker keeps serving")
       :format(name, expected), function()
      local r = raw.exchange(bytes)
      assert.is_truthy(r.res, "no final response to " .. name .. "; got: "
                               .. ("%q"):format(r.data))
      assert.equal(expected, r.status, "got: " .. r.data)
      assert.matches("close", (r.res.headers.connection or ""):lower(), 1,
                     true, "no Connection: close on the error")
      assert.is_true(r.closed, "the connection was left open after "
                               .. expected)
      assert.equal(200, raw.normal_status("/anything"))
    end)
  end

  it("identical duplicate Content-Length headers are accepted", function()
    local r = raw.exchange(req({ "POST /anything HTTP/1.1", "Host: a",
                                 "Content-Length: 5", "Content-Length: 5" },
                               "hello"))
    assert.equal(200, r.status, "got: " .. r.data)
    local echo = assert(cjson.decode(r.res.body))
    assert.equal("hello", echo.body)
    assert.is_false(r.closed, "closed the connection after a good request")
  end)

  it("a valid chunked body is accepted and passed on whole", function()
    local r = raw.exchange(req({ "POST /anything HTTP/1.1", "Host: a",
                                 "Transfer-Encoding: chunked" },
                               "5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\n\r\n"))
    assert.equal(200, r.status, "got: " .. r.data)
    local echo = assert(cjson.decode(r.res.body))
    assert.equal("hello world", echo.body)
    assert.is_false(r.closed)
  end)

  it("Transfer-Encoding is case-insensitive: CHUNKED is accepted",
     function()
    local r = raw.exchange(req({ "POST /anything HTTP/1.1", "Host: a",
                                 "Transfer-Encoding: CHUNKED" },
                               "3\r\nabc\r\n0\r\n\r\n"))
    assert.equal(200, r.status, "got: " .. r.data)
    assert.equal("abc", cjson.decode(r.res.body).body)
  end)

  it("HTTP/1.0 without Host is accepted, then the connection closes",
     function()
    local r = raw.exchange(req({ "GET /anything HTTP/1.0" }))
    assert.equal(200, r.status, "got: " .. r.data)
    assert.is_true(r.closed, "HTTP/1.0 without keep-alive left open")
  end)

  it("Expect: 100-continue gets 100 Continue before the body is sent",
     function()
    local client = raw.connect(5000)
    assert(client:send_raw(req({ "POST /anything HTTP/1.1", "Host: a",
                                 "Content-Type: text/plain",
                                 "Content-Length: 5",
                                 "Expect: 100-continue" })))
    -- Nothing of the body has been sent: the interim response must come.
    local first = client:receive_raw_response(2000, { idle = 300 })
    assert.matches("^HTTP/1%.1 100 Continue\r\n", first)
    assert.is_nil(first:find("HTTP/1%.1 [2-5]%d%d"),
                  "a final response came before the body: " .. first)
    local first_responses = raw.parse_responses(first)
    assert.equal(1, #first_responses)

    assert(client:send_raw("hello"))
    local rest = client:receive_raw_response(3000, { idle = 300 })
    client:close()
    local responses = raw.parse_responses(rest)
    local final
    for _, r in ipairs(responses) do
      if r.status >= 200 then
        final = r
        break
      end
    end
    assert.is_truthy(final, "no final response: " .. rest)
    assert.equal(200, final.status)
    local echo = assert(cjson.decode(final.body))
    assert.equal("hello", echo.body)
    assert.equal(200, raw.normal_status("/anything"))
  end)

  it("pipelining: two requests in one write get two responses in order",
     function()
    local client = raw.connect(5000)
    assert(client:send_raw(
      req({ "GET /anything/first HTTP/1.1", "Host: a" })
      .. req({ "GET /anything/second HTTP/1.1", "Host: a" })))
    local deadline = helpers.now() + 3
    local data = ""
    local responses
    repeat
      data = data .. client:receive_raw_response(500, { idle = 200 })
      responses = raw.parse_responses(data)
    until (#responses >= 2 and not responses[2].incomplete)
          or helpers.now() > deadline
    client:close()
    assert.equal(2, #responses, "got: " .. data)
    assert.equal(200, responses[1].status)
    assert.equal(200, responses[2].status)
    assert.equal("/anything/first", cjson.decode(responses[1].body).path)
    assert.equal("/anything/second", cjson.decode(responses[2].body).path)
  end)

  it("a request inside a Content-Length body is not a second request",
     function()
    local smuggled = req({ "GET /anything/smuggled HTTP/1.1", "Host: a" })
    local client = raw.connect(5000)
    assert(client:send_raw(
      req({ "POST /anything/outer HTTP/1.1", "Host: a",
            "Content-Type: text/plain",
            "Content-Length: " .. #smuggled }, smuggled)))
    local data = client:receive_raw_response(3000, { idle = 500 })
    -- Nothing more should arrive: wait a little longer for a 2nd answer.
    data = data .. client:receive_raw_response(700, { idle = 300 })
    local responses = raw.parse_responses(data)
    assert.equal(1, #responses, "got: " .. data)
    assert.equal(200, responses[1].status)
    local echo = assert(cjson.decode(responses[1].body))
    assert.equal("/anything/outer", echo.path)
    assert.equal(smuggled, echo.body)

    -- The connection is still usable and in sync: the next request is
    -- answered as itself.
    assert(client:send_raw(req({ "GET /anything/third HTTP/1.1",
                                 "Host: a" })))
    local next_data = client:receive_raw_response(3000, { idle = 300 })
    client:close()
    local next_responses = raw.parse_responses(next_data)
    assert.equal(1, #next_responses, "got: " .. next_data)
    assert.equal("/anything/third",
                 cjson.decode(next_responses[1].body).path)
  end)

  it("a chunked body with a request after the last chunk is pipelined, " ..
     "not part of the body", function()
    local client = raw.connect(5000)
    assert(client:send_raw(
      req({ "POST /anything/outer HTTP/1.1", "Host: a",
            "Content-Type: text/plain", "Transfer-Encoding: chunked" },
          "3\r\nabc\r\n0\r\n\r\n")
      .. req({ "GET /anything/next HTTP/1.1", "Host: a" })))
    local deadline = helpers.now() + 3
    local data = ""
    local responses
    repeat
      data = data .. client:receive_raw_response(500, { idle = 200 })
      responses = raw.parse_responses(data)
    until (#responses >= 2 and not responses[2].incomplete)
          or helpers.now() > deadline
    client:close()
    assert.equal(2, #responses, "got: " .. data)
    assert.equal("abc", cjson.decode(responses[1].body).body)
    assert.equal("/anything/next", cjson.decode(responses[2].body).path)
  end)
end)
