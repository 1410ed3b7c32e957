# l2l build. `make demo` and `make test` do their own set-up (scripts/setup.sh).
# Objects go to build/ (or build-asan/ for the sanitizer build); nothing in git.

PREFIX ?= /usr/local
BUILD  ?= build
CC     ?= cc
PKGS    = openblas jansson zlib plplot cmocka
OPT    ?= -O3 -march=native -ffp-contract=fast
CFLAGS += -std=c11 -g $(OPT) -fPIC -fopenmp -Wall -Wextra -Wshadow -Wno-unused-parameter \
          -D_POSIX_C_SOURCE=200809L -Iinclude -Isrc $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
LDLIBS  = $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lm
LDFLAGS += -fopenmp

LIB_SRC  = $(wildcard src/*.c)
LIB_OBJ  = $(LIB_SRC:src/%.c=$(BUILD)/obj/%.o)
TEST_SRC = $(wildcard tests/test_*.c)
TEST_BIN = $(TEST_SRC:tests/%.c=$(BUILD)/tests/%)
EX_SRC   = $(wildcard examples/*.c)
EX_BIN   = $(EX_SRC:examples/%.c=$(BUILD)/examples/%)
HDRS     = include/l2l.h $(wildcard src/*.h)

.PHONY: all deps data test test-unit test-asan demo bench experiments install clean
all: $(BUILD)/libl2l.a $(BUILD)/libl2l.so $(BUILD)/l2l $(TEST_BIN) $(EX_BIN)

deps:
	@scripts/setup.sh

data: deps
	@scripts/fetch_mnist.sh data/mnist

$(BUILD)/obj/%.o: src/%.c $(HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

$(BUILD)/libl2l.a: $(LIB_OBJ)
	ar rcs $@ $^

$(BUILD)/libl2l.so: $(LIB_OBJ)
	$(CC) -shared $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/l2l: $(wildcard tools/*.c tools/*.h) $(BUILD)/libl2l.a
	$(CC) $(CFLAGS) -Itools $(LDFLAGS) -o $@ $(wildcard tools/*.c) $(BUILD)/libl2l.a $(LDLIBS)

$(BUILD)/tests/%: tests/%.c tests/testutil.h $(BUILD)/libl2l.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< $(BUILD)/libl2l.a $(LDLIBS)

$(BUILD)/examples/%: examples/%.c $(BUILD)/libl2l.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< $(BUILD)/libl2l.a $(LDLIBS)

# The unit tests, then the same suite under AddressSanitizer and UBSan.
test: data
	@$(MAKE) --no-print-directory test-unit
	@$(MAKE) --no-print-directory test-asan

test-unit: all
	@scripts/run_tests.sh $(BUILD)

test-asan:
	@$(MAKE) --no-print-directory BUILD=build-asan OPT="-O1 -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all" \
	    LDFLAGS="-fopenmp -fsanitize=address,undefined" all
	@ASAN_OPTIONS=detect_leaks=1 LSAN_OPTIONS=suppressions=$(CURDIR)/tests/lsan.supp scripts/run_tests.sh build-asan

# Set-up first, then a fresh make: pkg-config's flags are read when make starts.
demo: data
	@$(MAKE) --no-print-directory all
	@scripts/demo.sh $(BUILD)

bench: data
	@$(MAKE) --no-print-directory all
	@scripts/bench.sh $(BUILD)

experiments: data
	@$(MAKE) --no-print-directory all
	@scripts/experiments.sh $(BUILD)

install: all
	install -d $(DESTDIR)$(PREFIX)/lib $(DESTDIR)$(PREFIX)/include $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib/pkgconfig
	install -m 644 $(BUILD)/libl2l.a $(DESTDIR)$(PREFIX)/lib/
	install -m 755 $(BUILD)/libl2l.so $(DESTDIR)$(PREFIX)/lib/
	install -m 644 include/l2l.h $(DESTDIR)$(PREFIX)/include/
	install -m 755 $(BUILD)/l2l $(DESTDIR)$(PREFIX)/bin/
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@PKGS@|openblas jansson zlib plplot|' l2l.pc.in > $(DESTDIR)$(PREFIX)/lib/pkgconfig/l2l.pc

clean:
	rm -rf build build-asan
