# mctune: one non-recursive Makefile.  `make V=1` shows the commands.
CC       ?= cc
CFLAGS   ?= -O2 -g
PREFIX   ?= /usr/local
BUILD    ?= build
DEPS     ?= 1

WARN     := -Wall -Wextra -Wno-unused-parameter
PKGS     := lmdb libcjson libxxhash libcurl openblas
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   = $(shell pkg-config --libs $(PKGS) 2>/dev/null)
ALL_CFLAGS = -std=c11 -D_GNU_SOURCE $(WARN) -I. $(PKG_CFLAGS) -fopenmp $(CFLAGS)
LDLIBS     = $(PKG_LIBS) -lxgboost -fopenmp -lm -lpthread -ldl
SAN_FLAGS  = -O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined

ifeq ($(V),1)
Q :=
else
Q := @
endif

LIB_SRC  := $(sort $(wildcard codegen/*.c db/*.c runtime/*.c tuner/*.c tuner/cmd/*.c))
LIB_SRC  := $(filter-out tuner/cmd/main.c,$(LIB_SRC))
LIB_OBJ  := $(LIB_SRC:%.c=$(BUILD)/obj/%.o)
SAN_OBJ  := $(LIB_SRC:%.c=$(BUILD)/san/%.o)
TEST_SRC := $(sort $(wildcard tests/test_*.c))
TESTS    := $(TEST_SRC:tests/%.c=$(BUILD)/tests/%)
# test_fleet drives a Slurm cluster and the mctune binary, not library code: it runs once.
SAN_TESTS:= $(filter-out %/test_fleet,$(TEST_SRC:tests/%.c=$(BUILD)/san-tests/%))
BENCH_SRC:= $(sort $(wildcard scripts/bench_*.c))
BENCHES  := $(BENCH_SRC:scripts/%.c=$(BUILD)/bench/%)
HDRS     := $(wildcard codegen/*.h db/*.h runtime/*.h tuner/*.h tuner/cmd/*.h tests/*.h scripts/*.h)

.PHONY: all deps test bench install clean
all: deps $(BUILD)/mctune

deps:
ifeq ($(DEPS),1)
	$(Q)sh scripts/install-deps.sh
endif

$(BUILD)/obj/%.o: %.c $(HDRS) | deps
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC    $<")
	$(Q)$(CC) $(ALL_CFLAGS) -c $< -o $@

$(BUILD)/san/%.o: %.c $(HDRS) | deps
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CCSAN $<")
	$(Q)$(CC) $(ALL_CFLAGS) $(SAN_FLAGS) -c $< -o $@

$(BUILD)/libmctune.a: $(LIB_OBJ)
	$(Q)rm -f $@ && ar rcs $@ $^

$(BUILD)/libmctune-san.a: $(SAN_OBJ)
	$(Q)rm -f $@ && ar rcs $@ $^

$(BUILD)/mctune: $(BUILD)/obj/tuner/cmd/main.o $(BUILD)/libmctune.a
	@$(if $(Q),echo "  LD    $@")
	$(Q)$(CC) $(ALL_CFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/tests/%: tests/%.c $(BUILD)/libmctune.a $(HDRS)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  TEST  $@")
	$(Q)$(CC) $(ALL_CFLAGS) -o $@ $< $(BUILD)/libmctune.a $(LDLIBS)

$(BUILD)/san-tests/%: tests/%.c $(BUILD)/libmctune-san.a $(HDRS)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  TSAN  $@")
	$(Q)$(CC) $(ALL_CFLAGS) $(SAN_FLAGS) -o $@ $< $(BUILD)/libmctune-san.a $(LDLIBS)

# no -march: a benchmark runs on any x86-64; its ISA-specific parts use target attributes
$(BUILD)/bench/%: scripts/%.c $(BUILD)/libmctune.a $(HDRS)
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(ALL_CFLAGS) -O3 -o $@ $< $(BUILD)/libmctune.a $(LDLIBS)

# `make test` runs every tests/test_*.c twice: optimized, then under ASan+UBSan (test_fleet,
# the Slurm fleet, once); then the codegen, measurement and generated-library tests again with
# the ISA tier forced down to avx2 and to sse4.2 (where the host's tier is above), so code that
# needs AVX-512 fails on any host.
TIER_TESTS := $(BUILD)/tests/test_codegen $(BUILD)/tests/test_measure $(BUILD)/tests/test_gen
# The test binaries (optimized, sanitized, fuzz targets) build in parallel, one job per core
# (JOBS), unless make already runs with -j; the tests themselves then run one at a time.
JOBS ?= $(shell nproc 2>/dev/null || echo 2)
.PHONY: test-build
test-build: all $(TESTS) $(SAN_TESTS)
test:
	$(Q)$(MAKE) --no-print-directory $(if $(findstring jobserver,$(MAKEFLAGS)),,-j$(JOBS)) test-build
	$(Q)MCTUNE=$(BUILD)/mctune sh tests/run.sh $(TESTS) -- $(SAN_TESTS) \
	    --tier=avx2 $(TIER_TESTS) --tier=sse4.2 $(TIER_TESTS)

bench: all $(BENCHES)
	$(Q)for b in $(BENCHES); do echo "== $$b"; $$b || exit 1; done

install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/mctune/runtime
	install -m 755 $(BUILD)/mctune $(DESTDIR)$(PREFIX)/bin/mctune
	install -m 644 runtime/*.h runtime/*.c $(DESTDIR)$(PREFIX)/share/mctune/runtime/

clean:
	rm -rf $(BUILD)

# ---- fuzzing: `make fuzz` builds tests/fuzz_*.c as libFuzzer targets with clang; `make test`
# builds them first and tests/test_fuzz.c runs each for a few seconds. Without clang and
# libFuzzer the targets are skipped with a note (and test_fuzz says so).
FUZZ_CC    ?= clang
FUZZ_SRC   := $(sort $(wildcard tests/fuzz_*.c))
FUZZERS    := $(FUZZ_SRC:tests/%.c=$(BUILD)/fuzz/%)
FUZZ_LIBSRC = $(sort $(wildcard codegen/*.c db/*.c runtime/*.c))
FUZZ_FLAGS  = -std=c11 -D_GNU_SOURCE -I. $(PKG_CFLAGS) -g -O1 -fno-omit-frame-pointer \
              -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
FUZZ_LIBS  := -llmdb -lcjson -lxxhash -lm
# Sources one target needs beyond FUZZ_LIBSRC: FUZZ_EXTRA_<target>, e.g. the model loader of
# tuner/ and only what it calls (tuner/ as a whole pulls in the compiler driver and curl).
FUZZ_EXTRA_fuzz_model := tuner/model.c tuner/cmd/cmd_shapes.c tuner/cmd/cli.c
$(foreach f,$(FUZZERS),$(eval $(f): $(FUZZ_EXTRA_$(notdir $(f)))))

.PHONY: fuzz
fuzz: $(FUZZERS)

$(BUILD)/fuzz/%: tests/%.c $(FUZZ_LIBSRC) $(HDRS) | deps
	@mkdir -p $(dir $@)
	$(Q)if printf 'int LLVMFuzzerTestOneInput(const char *d, unsigned long n) { return 0; }\n' \
	    | $(FUZZ_CC) -fsanitize=fuzzer -x c - -o $@.probe >/dev/null 2>&1; then \
	    rm -f $@.probe; \
	    $(if $(Q),echo "  FUZZ  $@";) \
	    $(FUZZ_CC) $(FUZZ_FLAGS) -o $@ $< $(FUZZ_LIBSRC) $(FUZZ_EXTRA_$*) $(FUZZ_LIBS); \
	else \
	    rm -f $@.probe; \
	    echo "  FUZZ  skipped $@: $(FUZZ_CC) with libFuzzer not found (scripts/install-deps.sh)"; \
	fi

test-build: fuzz

# ---- mctune gen: the runtime that ships inside generated libraries, embedded in the binary as
# strings (build/gen/mct_rt_embed.h), so `mctune gen` needs no source tree at run time.
RT_EMBED := runtime/mct_err.h runtime/cpu.h runtime/dispatch.h runtime/quant.h runtime/err.c \
            runtime/cpu.c runtime/generic.c runtime/dispatch.c runtime/quant.c
$(BUILD)/gen/mct_rt_embed.h: $(RT_EMBED) Makefile
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  EMBED $@")
	$(Q){ echo '/* generated from runtime/ by the Makefile, do not edit */'; \
	  echo 'static const struct { const char *path, *text; } mct_rt_embedded[] = {'; \
	  for f in $(RT_EMBED); do echo "{\"$$f\","; \
	    sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' -e 's/^/"/' -e 's/$$/\\n"/' $$f; echo '},'; done; \
	  echo '};'; } > $@.tmp && mv $@.tmp $@
# (codegen/emit_fixed.c includes it; the fuzz targets compile codegen/*.c themselves)
$(BUILD)/obj/codegen/emit_fixed.o $(BUILD)/san/codegen/emit_fixed.o $(FUZZERS): \
    $(BUILD)/gen/mct_rt_embed.h
$(BUILD)/obj/codegen/emit_fixed.o $(BUILD)/san/codegen/emit_fixed.o: ALL_CFLAGS += -I$(BUILD)/gen
$(FUZZERS): FUZZ_FLAGS += -I$(BUILD)/gen

# ---- bench-search: the sample-efficiency study of the search strategies (scripts/bench-search.c,
# about an hour at full size on two cores, so not part of `make bench`). The compile cache and
# the tables stay in $(BUILD). Options through BENCH_SEARCH_ARGS, e.g. a quick check:
#   make bench-search BENCH_SEARCH_ARGS="--budget 8 --seeds 1 --layers 0,4 --shrink 8"
# scripts/llm-eval runs the same study with an LLM guide. tests/test_bench_search runs the binary.
.PHONY: bench-search
$(BUILD)/bench/bench-search: scripts/bench-search.c $(BUILD)/libmctune.a $(HDRS)
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(ALL_CFLAGS) -O3 -o $@ $< $(BUILD)/libmctune.a $(LDLIBS)

bench-search: all $(BUILD)/bench/bench-search
	$(Q)$(BUILD)/bench/bench-search --cache $(BUILD)/bench-search-cc \
	    --out $(BUILD)/bench-search.txt $(BENCH_SEARCH_ARGS)

$(BUILD)/tests/test_bench_search $(BUILD)/san-tests/test_bench_search: $(BUILD)/bench/bench-search

# ---- the Llama-3-8B decoder block (models/llama_block*.c), the example consumer of a generated
# library: $(BUILD)/llama_block has the openblas and generic backends; with
# BLOCK_GEN_DIR=DIR BLOCK_GEN_NAME=NAME, $(BUILD)/llama_block-gen also has `gen`, built against
# DIR/NAME.h and DIR/NAME.c (what `mctune gen --out DIR --name NAME` wrote).
# runtime/quant.c (libc only) quantizes the block's weights by the rules generated libraries use.
BLOCK_SRC    := models/llama_block.c models/llama_block_main.c runtime/quant.c runtime/err.c
BLOCK_CFLAGS := -std=c11 -D_GNU_SOURCE $(WARN) -I. -O2 -march=native -fopenmp \
                $(shell pkg-config --cflags openblas 2>/dev/null)
BLOCK_LIBS   := $(shell pkg-config --libs openblas 2>/dev/null || echo -lopenblas) -fopenmp -lm
BLOCK_GEN_DIR  ?= $(BUILD)/demo/gen
BLOCK_GEN_NAME ?= mctdemo
.PHONY: block block-gen bench-block
block: $(BUILD)/llama_block
$(BUILD)/llama_block: $(BLOCK_SRC) models/llama_block.h runtime/quant.h | deps
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC    $@")
	$(Q)$(CC) $(BLOCK_CFLAGS) -o $@ $(BLOCK_SRC) $(BLOCK_LIBS)
block-gen: $(BLOCK_SRC) models/llama_block.h runtime/quant.h $(BLOCK_GEN_DIR)/$(BLOCK_GEN_NAME).c
	@mkdir -p $(BUILD)
	@$(if $(Q),echo "  CC    $(BUILD)/llama_block-gen ($(BLOCK_GEN_DIR)/$(BLOCK_GEN_NAME).c)")
	$(Q)$(CC) -std=c11 -O2 -fopenmp -c $(BLOCK_GEN_DIR)/$(BLOCK_GEN_NAME).c \
	    -o $(BUILD)/$(BLOCK_GEN_NAME).o
	$(Q)$(CC) $(BLOCK_CFLAGS) -I$(BLOCK_GEN_DIR) -DMCT_BLOCK_GEN=$(BLOCK_GEN_NAME) \
	    -DMCT_BLOCK_GEN_H='"$(BLOCK_GEN_NAME).h"' -o $(BUILD)/llama_block-gen $(BLOCK_SRC) \
	    $(BUILD)/$(BLOCK_GEN_NAME).o $(BLOCK_LIBS)

# test_block compiles llama_block.c in (the bound of low-precision kernels, tested directly)
$(BUILD)/tests/test_block $(BUILD)/san-tests/test_block: models/llama_block.c models/llama_block.h

# `make bench-block`: prefill and decode of the block per backend (scripts/bench-block);
# WEIGHTS=f32,i8,q4g32: per weight format side by side.
bench-block: $(BUILD)/llama_block
	$(Q)BUILD=$(BUILD) $(if $(WEIGHTS),WEIGHTS=$(WEIGHTS)) sh scripts/bench-block $(BENCH_BLOCK_ARGS)

# `make demo`: the main job in one command (scripts/demo.sh): deps, build, tune Llama-3-8B layers
# into $(BUILD)/demo/db, gen, the decoder block on the generated library, a table against
# OpenBLAS. BUDGET=N (samples per workload), DEMO_M=1,4,16,128,512, THREADS=N, WEIGHTS=i8,q4g32
# (the matmul layers also tuned, generated and run in those weight formats).
.PHONY: demo
demo:
	$(Q)BUILD=$(BUILD) DEPS=$(DEPS) $(if $(BUDGET),BUDGET=$(BUDGET)) \
	    $(if $(DEMO_M),DEMO_M=$(DEMO_M)) $(if $(THREADS),THREADS=$(THREADS)) \
	    $(if $(WEIGHTS),WEIGHTS=$(WEIGHTS)) sh scripts/demo.sh
