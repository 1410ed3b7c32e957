# l2l build. `make demo` and `make test` do their own set-up (scripts/setup.sh).
# Objects go to build/ (build-asan/ for the sanitizer build, build-fuzz/ for the fuzz
# harnesses); nothing in git.
#
#   build/libl2l.{a,so}   the library: src/*/ (BLAS, JSON, zlib, OpenMP; exports include/l2l.h only)
#   build/libl2lplot.a    figures (PLplot) and the CSV reader of `l2l plot`, for the tool,
#                         the benchmark and the tests: tools/plot/
#   build/l2l             the command-line tool: tools/
#   build/l2l-bench       the benchmark: bench/bench.c, bench/measure.c (`make bench`)
#   build/tests/test_*    the tests: tests/

PREFIX ?= /usr/local
BUILD  ?= build
CC     ?= cc
LIB_PKGS = openblas jansson zlib
OPT    ?= -O3 -march=native -ffp-contract=fast
CFLAGS += -std=c11 -g $(OPT) -fPIC -fopenmp -Wall -Wextra -Wshadow -Wno-unused-parameter \
          -D_POSIX_C_SOURCE=200809L -Iinclude -Isrc $(shell pkg-config --cflags $(LIB_PKGS) plplot 2>/dev/null)
LIB_LIBS  = $(shell pkg-config --libs $(LIB_PKGS) 2>/dev/null) -lm
PLOT_LIBS = $(shell pkg-config --libs plplot 2>/dev/null)
TEST_LIBS = $(shell pkg-config --libs cmocka 2>/dev/null)
LDFLAGS += -fopenmp

LIB_SRC   = $(wildcard src/*/*.c)
LIB_OBJ   = $(LIB_SRC:src/%.c=$(BUILD)/obj/%.o)
LIB_HDRS  = include/l2l.h $(wildcard src/*/*.h)
PLOT_SRC  = $(wildcard tools/plot/*.c)
PLOT_OBJ  = $(PLOT_SRC:tools/plot/%.c=$(BUILD)/obj/plot/%.o)
TOOL_SRC  = $(wildcard tools/*.c)
TOOL_HDRS = $(wildcard tools/*.h tools/plot/*.h)
TEST_SRC  = $(wildcard tests/test_*.c)
TEST_BIN  = $(TEST_SRC:tests/%.c=$(BUILD)/tests/%)
EX_SRC    = $(wildcard examples/*.c)
EX_BIN    = $(EX_SRC:examples/%.c=$(BUILD)/examples/%)
BENCH_BIN = $(BUILD)/l2l-bench $(BUILD)/metagrad_check

# MPI (docs/DISTRIBUTED.md): the tool shares `l2l train` among the processes of an MPI job
# through Open MPI when its pkg-config file is there (scripts/setup.sh installs it), and
# $(BUILD)/l2l-pingpong measures MPI's latency and bandwidth. MPI=0 builds a tool that
# runs as one process. The library never links MPI.
MPI ?= $(shell pkg-config --exists ompi-c 2>/dev/null && echo 1 || echo 0)
ifeq ($(MPI),1)
MPI_CFLAGS = -DL2L_WITH_MPI $(shell pkg-config --cflags ompi-c)
MPI_LIBS   = $(shell pkg-config --libs ompi-c)
BENCH_BIN += $(BUILD)/l2l-pingpong
endif

.PHONY: all deps data test test-unit test-python test-asan fuzz fuzz-build demo bench bench-mpi experiments experiments-conv experiments-seeds install clean
all: $(BUILD)/libl2l.a $(BUILD)/libl2l.so $(BUILD)/l2l $(TEST_BIN) $(EX_BIN) $(BENCH_BIN)

deps:
	@scripts/setup.sh

data: deps
	@scripts/fetch_mnist.sh data/mnist

# The library's objects: hidden visibility, so that only L2L_API names are exported.
$(BUILD)/obj/%.o: src/%.c $(LIB_HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -fvisibility=hidden -c $< -o $@

$(BUILD)/libl2l.a: $(LIB_OBJ)
	ar rcs $@ $^

$(BUILD)/libl2l.so: $(LIB_OBJ)
	$(CC) -shared $(LDFLAGS) -o $@ $^ $(LIB_LIBS)

$(BUILD)/obj/plot/%.o: tools/plot/%.c $(LIB_HDRS) $(TOOL_HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Itools -c $< -o $@

$(BUILD)/libl2lplot.a: $(PLOT_OBJ)
	ar rcs $@ $^

$(BUILD)/l2l: $(TOOL_SRC) $(TOOL_HDRS) $(BUILD)/libl2lplot.a $(BUILD)/libl2l.a
	$(CC) $(CFLAGS) -Itools $(MPI_CFLAGS) $(LDFLAGS) -o $@ $(TOOL_SRC) $(BUILD)/libl2lplot.a $(BUILD)/libl2l.a \
	    $(PLOT_LIBS) $(LIB_LIBS) $(MPI_LIBS)

$(BUILD)/l2l-pingpong: bench/pingpong.c
	$(CC) $(CFLAGS) $(MPI_CFLAGS) $(LDFLAGS) -o $@ $< $(MPI_LIBS)

BENCH_SRC = bench/bench.c bench/measure.c bench/conv.c
$(BUILD)/l2l-bench: $(BENCH_SRC) bench/bench.h $(BUILD)/libl2lplot.a $(BUILD)/libl2l.a $(LIB_HDRS) $(TOOL_HDRS)
	$(CC) $(CFLAGS) -Itools $(LDFLAGS) -o $@ $(BENCH_SRC) $(BUILD)/libl2lplot.a $(BUILD)/libl2l.a \
	    $(PLOT_LIBS) $(LIB_LIBS)

$(BUILD)/metagrad_check: bench/metagrad_check.c $(BUILD)/libl2l.a $(LIB_HDRS)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< $(BUILD)/libl2l.a $(LIB_LIBS)

# Tests link the static library (internals included) and the slow reference beside them.
$(BUILD)/tests/%: tests/%.c $(wildcard tests/*.h) tests/lstm_ref.c tests/lstm_ref.h $(BUILD)/libl2lplot.a $(BUILD)/libl2l.a $(LIB_HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Itools -Itests $(LDFLAGS) -o $@ $< tests/lstm_ref.c $(BUILD)/libl2lplot.a \
	    $(BUILD)/libl2l.a $(TEST_LIBS) $(PLOT_LIBS) $(LIB_LIBS)

# test_exports reads the shared library's symbol table (nm -D).
$(BUILD)/tests/test_exports: $(BUILD)/libl2l.so

# Examples use the public header alone, as an installed library's user would.
$(BUILD)/examples/%: examples/%.c $(BUILD)/libl2l.a include/l2l.h
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< $(BUILD)/libl2l.a $(LIB_LIBS)

# The unit tests, then the same suite under AddressSanitizer and UBSan.
test: data
	@$(MAKE) --no-print-directory test-unit
	@$(MAKE) --no-print-directory test-python
	@$(MAKE) --no-print-directory test-asan

test-unit: all
	@scripts/run_tests.sh $(BUILD)

# The Python binding's tests (pytest from Debian's /usr/bin/python3) on BUILD's shared
# library; the ASan build cannot be loaded into Python, so they run once.
PYTHON ?= /usr/bin/python3
test-python: $(BUILD)/libl2l.so
	@L2L_LIBRARY=$(CURDIR)/$(BUILD)/libl2l.so $(PYTHON) -m pytest -q -p no:cacheprovider tests/python

test-asan:
	@$(MAKE) --no-print-directory BUILD=build-asan OPT="-O1 -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all" \
	    LDFLAGS="-fopenmp -fsanitize=address,undefined" all
	@ASAN_OPTIONS=detect_leaks=1 LSAN_OPTIONS=suppressions=$(CURDIR)/tests/lsan.supp scripts/run_tests.sh build-asan
	@$(MAKE) --no-print-directory fuzz FUZZ_SECONDS=$(FUZZ_TEST_SECONDS)

# Fuzzing (tests/fuzz/README.md): libFuzzer harnesses, built with clang under ASan + UBSan
# in build-fuzz/ (library included, with coverage instrumentation). `make fuzz` runs each
# for FUZZ_SECONDS; `make test` runs each for FUZZ_TEST_SECONDS to catch regressions.
FUZZ_SECONDS      ?= 60
FUZZ_TEST_SECONDS ?= 10
FUZZ_TARGETS = $(patsubst tests/fuzz/%.c,%,$(wildcard tests/fuzz/fuzz_*.c))
FUZZ_SAN     = -fsanitize=address,undefined -fno-sanitize-recover=all

fuzz: fuzz-build
	@scripts/run_fuzz.sh build-fuzz $(FUZZ_SECONDS) $(FUZZ_TARGETS)

# clang warns of gcc's attributes and of vectorisation hints it cannot honour at -O1.
fuzz-build:
	@$(MAKE) --no-print-directory BUILD=build-fuzz CC=clang \
	    OPT="-O1 -fno-omit-frame-pointer $(FUZZ_SAN) -fsanitize=fuzzer-no-link \
	         -Wno-unknown-attributes -Wno-pass-failed" \
	    LDFLAGS="-fopenmp $(FUZZ_SAN)" $(FUZZ_TARGETS:%=build-fuzz/fuzz/%)

# Harnesses link the static libraries (the CSV reader is in libl2lplot.a; no PLplot code
# is pulled in).
$(BUILD)/fuzz/%: tests/fuzz/%.c $(wildcard tests/fuzz/*.h) $(BUILD)/libl2lplot.a $(BUILD)/libl2l.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Itools -fsanitize=fuzzer $(LDFLAGS) -o $@ $< $(BUILD)/libl2lplot.a \
	    $(BUILD)/libl2l.a $(LIB_LIBS)

# Set-up first, then a fresh make: pkg-config's flags are read when make starts.
demo: data
	@$(MAKE) --no-print-directory all
	@scripts/demo.sh $(BUILD)

bench: data
	@$(MAKE) --no-print-directory all
	@scripts/bench.sh $(BUILD)

# MNIST meta-training on 1 and 2 processes and threads, and MPI's latency and bandwidth
# (docs/DISTRIBUTED.md).
bench-mpi: data
	@$(MAKE) --no-print-directory all
	@scripts/bench_mpi.sh $(BUILD)

# The MNIST experiments, then the conv net's (scripts/experiments_conv.sh).
experiments: data
	@$(MAKE) --no-print-directory all
	@scripts/experiments.sh $(BUILD)
	@scripts/experiments_conv.sh $(BUILD)

experiments-conv: data
	@$(MAKE) --no-print-directory all
	@scripts/experiments_conv.sh $(BUILD)

# l2l's MNIST recipe from five seeds, each timed alone, and their test comparison
# (scripts/mnist_seeds.sh; about 45 minutes).
experiments-seeds: data
	@$(MAKE) --no-print-directory all
	@scripts/mnist_seeds.sh $(BUILD)

install: all
	install -d $(DESTDIR)$(PREFIX)/lib $(DESTDIR)$(PREFIX)/include $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib/pkgconfig
	install -m 644 $(BUILD)/libl2l.a $(DESTDIR)$(PREFIX)/lib/
	install -m 755 $(BUILD)/libl2l.so $(DESTDIR)$(PREFIX)/lib/
	install -m 644 include/l2l.h $(DESTDIR)$(PREFIX)/include/
	install -m 755 $(BUILD)/l2l $(DESTDIR)$(PREFIX)/bin/
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@PKGS@|$(LIB_PKGS)|' l2l.pc.in > $(DESTDIR)$(PREFIX)/lib/pkgconfig/l2l.pc

clean:
	rm -rf build build-asan build-fuzz
