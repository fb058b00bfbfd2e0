# Sluice build. `make` builds build/sluice; `make run` and `make test` install missing Debian
# packages first (tools/install-deps), so both work on a fresh Debian 12 machine.

PREFIX ?= /usr/local
CC ?= cc
PKGS := libevent libevent_openssl luajit libpcre2-8 yaml-0.1 openssl

PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS))
PKG_LIBS = $(shell pkg-config --libs $(PKGS))

WARN := -Wall -Wextra -Werror -Wno-unused-parameter -Wshadow -Wstrict-prototypes
CFLAGS ?= -O2 -g
ALL_CFLAGS = -std=c11 -D_GNU_SOURCE $(WARN) -Icore $(PKG_CFLAGS) $(CFLAGS)
LDLIBS = $(PKG_LIBS) -lm -ldl -lpthread
# -rdynamic: the LuaJIT FFI finds the sl_ffi_* exports of the executable through ffi.C.
LDFLAGS_EXE = -rdynamic

SAN := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined

SRCS := $(shell find core -name '*.c' ! -path 'core/test/*' ! -path 'core/fuzz/*' | sort)
LIB_SRCS := $(filter-out core/main.c,$(SRCS))
OBJS := $(SRCS:%.c=build/obj/%.o)
ASAN_OBJS := $(LIB_SRCS:%.c=build/asan/%.o)
TEST_SRCS := $(shell find core/test -name 'test_*.c' | sort)
TEST_BINS := $(TEST_SRCS:core/test/%.c=build/test/%)
HDRS := $(shell find core -name '*.h')

.PHONY: all deps run test ctest spec fuzz fuzz-smoke bench install clean asan

all: build/sluice lua/sluice/ffi/cdefs.lua

lua/sluice/ffi/cdefs.lua: core/lua/sl_lua_ffi.h tools/gen-cdefs
	sh tools/gen-cdefs

deps:
	@sh tools/install-deps

build/obj/%.o: %.c $(HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c $< -o $@

build/asan/%.o: %.c $(HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(SAN) -O1 -c $< -o $@

build/sluice: $(OBJS)
	$(CC) $(LDFLAGS_EXE) -o $@ $(OBJS) $(LDLIBS)

# The gateway itself built with ASan+UBSan; the busted specs can run against it.
build/sluice-asan: $(ASAN_OBJS) build/asan/core/main.o
	$(CC) $(SAN) $(LDFLAGS_EXE) -o $@ $^ $(LDLIBS)

build/test/%: core/test/%.c $(ASAN_OBJS) core/test/sl_test.h
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(SAN) -O1 $< $(ASAN_OBJS) -o $@ $(LDLIBS)

asan: build/sluice-asan

ctest: $(TEST_BINS)

PARSER_SRCS := core/http/sl_http_parse.c core/http/sl_http_request.c

build/fuzz/fuzz_http_parse: core/fuzz/fuzz_http_parse.c $(PARSER_SRCS) $(HDRS)
	@mkdir -p $(dir $@)
	clang -std=c11 -D_GNU_SOURCE -Icore -g -O1 -fsanitize=fuzzer,address,undefined \
	    $< $(PARSER_SRCS) -o $@

# `make fuzz` runs until stopped (FUZZ_SECONDS to bound it); `make test` runs a bounded smoke.
FUZZ_SECONDS ?= 0
fuzz: build/fuzz/fuzz_http_parse
	@mkdir -p build/fuzz-corpus
	build/fuzz/fuzz_http_parse -max_total_time=$(FUZZ_SECONDS) build/fuzz-corpus core/fuzz/corpus

run: deps
	@$(MAKE) --no-print-directory build/sluice
	build/sluice start --foreground -c examples/sluice.conf

test: deps
	@$(MAKE) --no-print-directory build/sluice build/sluice-asan ctest build/fuzz/fuzz_http_parse lua/sluice/ffi/cdefs.lua
	@sh tools/run-tests

bench: deps
	@$(MAKE) --no-print-directory build/sluice
	@bash bench/run.sh
	@bash bench/prefunction.sh
	@bash bench/sigv4.sh
	@bash bench/lambda.sh
	@bash bench/config-propagation.sh

install: build/sluice lua/sluice/ffi/cdefs.lua
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/sluice
	install -m 755 build/sluice $(DESTDIR)$(PREFIX)/bin/sluice
	cp -R lua $(DESTDIR)$(PREFIX)/share/sluice/
	cp -R plugins $(DESTDIR)$(PREFIX)/share/sluice/

clean:
	rm -rf build
