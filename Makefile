# llamac — `make` builds build/llamac; `make test` runs the test suite (plain, with
# the client suite, then under AddressSanitizer + UndefinedBehaviorSanitizer); `make bench` prints speed.
CC       ?= cc
BUILD    ?= build
OPT      ?= -O3
CFLAGS   ?=
WARN      = -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wno-unused-parameter -Wno-format-truncation -Wno-missing-field-initializers
BASE      = -std=c11 -D_GNU_SOURCE -Iinclude -Isrc -pthread -MMD -MP $(WARN) $(OPT) $(CFLAGS)
COMMA    := ,
# PCRE2 runs the byte-level BPE pre-tokenizer regex; cJSON reads tokenizer.json
# (Debian: libpcre2-dev, libcjson-dev); libmicrohttpd is llamac serve's HTTP
# (libmicrohttpd-dev).
LDLIBS    = -lm -pthread -lpcre2-8 -lcjson -lmicrohttpd

LIB_SRC   = $(filter-out src/backend/cpu/kernels_simd.c src/backend/cuda/cuda_none.c,$(shell find src -name '*.c' | sort))
CLI_SRC   = $(shell find cli -name '*.c' | sort)
TEST_SRC  = $(shell find tests -name '*.c' -not -path 'tests/fuzz/*' | sort)

# The SIMD kernels are one source compiled once per instruction set; the
# dispatcher picks at run time, so the binary runs on any x86-64.
ARCH     := $(shell $(CC) -dumpmachine)
ifneq (,$(findstring x86_64,$(ARCH)))
SIMD_OBJ  = $(BUILD)/obj/kernels_avx2.o $(BUILD)/obj/kernels_avx512.o $(BUILD)/obj/kernels_avx512vnni.o
FLAGS_avx2       = -mavx2 -mfma -mf16c -DSIMD_ISA_avx2
FLAGS_avx512     = -mavx512f -mavx512vl -mavx512bw -mavx512dq -mfma -mf16c -DSIMD_ISA_avx512
FLAGS_avx512vnni = $(FLAGS_avx512) -mavx512vnni -DSIMD_VNNI
endif
ifneq (,$(findstring aarch64,$(ARCH)))
SIMD_OBJ  = $(BUILD)/obj/kernels_neon.o
FLAGS_neon       = -DSIMD_ISA_neon
endif

# The CUDA backend builds when nvcc is found (CUDA=0 leaves it out; then
# cuda_none.c stands in and --device cuda says the build has none).
# CUDA_ARCH picks the GPU generation: 90 for Hopper (H100, H200), 89 for Ada, 80 for A100.
NVCC     ?= $(shell command -v nvcc 2>/dev/null || ls /usr/local/cuda/bin/nvcc 2>/dev/null)
CUDA     ?= $(if $(NVCC),1,0)
ifeq ($(CUDA),1)
CUDA_HOME ?= $(patsubst %/bin/nvcc,%,$(realpath $(NVCC)))
CUDA_ARCH ?= 90
CUDA_SRC  = $(shell find src -name '*.cu' | sort)
CUDA_OBJ  = $(CUDA_SRC:%.cu=$(BUILD)/obj/%.o)
NVFLAGS   = -std=c++17 -O3 -Iinclude -Isrc -MMD -MP --Werror all-warnings $(CUDA_DEFS) \
            -gencode arch=compute_$(CUDA_ARCH),code=[sm_$(CUDA_ARCH),compute_$(CUDA_ARCH)] \
            -Xcompiler -Wall,-Wextra,-Werror,-Wno-unused-parameter,-Wno-format-truncation,-Wno-missing-field-initializers
LDLIBS   += -L$(CUDA_HOME)/lib64 -Wl,-rpath,$(CUDA_HOME)/lib64 -lcublas -lcudart_static -ldl -lrt -lstdc++
else
CUDA_OBJ  = $(BUILD)/obj/src/backend/cuda/cuda_none.o
endif

# The chat page (GET /) is an HTML file compiled in as a byte array.
PAGE_OBJ  = $(BUILD)/obj/gen/chat_page.o

LIB_OBJ   = $(LIB_SRC:%.c=$(BUILD)/obj/%.o) $(SIMD_OBJ) $(CUDA_OBJ) $(PAGE_OBJ)
CLI_OBJ   = $(CLI_SRC:%.c=$(BUILD)/obj/%.o)
TEST_OBJ  = $(TEST_SRC:%.c=$(BUILD)/obj/%.o)

# No built-in suffix rules: every rule is written here.
.SUFFIXES:
.PHONY: all test test-plain test-sanitize test-arm64 bench run clean format models print-cuda dev stamps fuzz fuzz-if-clang
all: $(BUILD)/llamac

$(BUILD)/libllamac.a: $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/llamac: $(CLI_OBJ) $(BUILD)/libllamac.a
	$(CC) $(BASE) -o $@ $^ $(LDLIBS)

$(BUILD)/test_llamac: $(TEST_OBJ) $(BUILD)/libllamac.a
	$(CC) $(BASE) -o $@ $^ $(LDLIBS)

# The kernel and quantization tests alone (make test-arm64): no model or
# tokenizer or server code, so no PCRE2, cJSON or libmicrohttpd, which Debian has no static arm64 builds of.
KERNEL_TEST_OBJ = $(BUILD)/obj/tests/test_main_kernels.o $(BUILD)/obj/tests/harness.o \
                  $(BUILD)/obj/tests/test_quant.o $(BUILD)/obj/tests/test_kernels.o
$(BUILD)/test_kernels: $(KERNEL_TEST_OBJ) $(BUILD)/libllamac.a
	$(CC) $(BASE) -o $@ $^ $(filter-out -lpcre2-8 -lcjson -lmicrohttpd,$(LDLIBS))

$(BUILD)/obj/tests/test_main_kernels.o: tests/test_main.c
	@mkdir -p $(dir $@)
	$(CC) $(BASE) -DLLAMAC_TESTS_KERNELS_ONLY -c -o $@ $<

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(BASE) -c -o $@ $<

# od and sed rather than xxd -i (which comes with vim): a C array of the
# page's bytes, so any C compiler builds it and no file is read at run time.
$(BUILD)/gen/chat_page.c: src/server/chat_page.html
	@mkdir -p $(dir $@)
	{ echo '/* Generated from $< by the Makefile: edit the HTML, not this. */'; \
	  echo '#include "server/chat_page.h"'; \
	  echo 'const unsigned char chat_page_html[] = {'; \
	  od -An -v -tx1 $< | sed -E 's/ ?([0-9a-f]{2})/0x\1,/g'; \
	  echo '};'; \
	  echo 'const size_t chat_page_html_len = sizeof chat_page_html;'; } >$@.tmp && mv $@.tmp $@

$(PAGE_OBJ): $(BUILD)/gen/chat_page.c
	@mkdir -p $(dir $@)
	$(CC) $(BASE) -c -o $@ $<

$(BUILD)/obj/%.o: %.cu
	@mkdir -p $(dir $@)
	$(NVCC) $(NVFLAGS) -c -o $@ $<

$(BUILD)/obj/kernels_%.o: src/backend/cpu/kernels_simd.c
	@mkdir -p $(dir $@)
	$(CC) $(BASE) $(FLAGS_$*) -ffp-contract=fast -c -o $@ $<

-include $(LIB_OBJ:.o=.d) $(CLI_OBJ:.o=.d) $(TEST_OBJ:.o=.d) $(BUILD)/obj/tests/test_main_kernels.d

# Kernel experiments (dev/cuda, as llm.c keeps them): each driver checks its
# variants against a reference, then times them. Needs the CUDA build.
DEV_CUDA = $(patsubst dev/cuda/%.cu,$(BUILD)/dev/%,$(wildcard dev/cuda/*.cu))
dev: $(DEV_CUDA)

$(BUILD)/dev/%: dev/cuda/%.cu $(BUILD)/libllamac.a
	@[ "$(CUDA)" = 1 ] || { echo "make dev needs nvcc (the CUDA build)"; exit 1; }
	@mkdir -p $(dir $@)
	$(NVCC) $(NVFLAGS) -o $@ $< $(BUILD)/libllamac.a $(filter-out -lstdc++ -pthread -Wl$(COMMA)%,$(LDLIBS)) -Xlinker -rpath=$(CUDA_HOME)/lib64

# The decoding kernels with per-block time stamps (src/backend/cuda/cuda_stamps.cuh):
# build-stamps/llamac (Q8_0 / Q4_0 weights) writes them to $LLAMAC_CUDA_STAMPS.{ops,attn}
# as its backend closes; dev/cuda/stamps_timeline.py turns them into a step's timeline.
stamps:
	@[ "$(CUDA)" = 1 ] || { echo "make stamps needs nvcc (the CUDA build)"; exit 1; }
	$(MAKE) BUILD=build-stamps CUDA_DEFS=-DLLAMAC_CUDA_STAMPS build-stamps/llamac

# Which backends a build holds, for scripts: make print-cuda
print-cuda:
	@echo $(CUDA)

# The suite, then again under AddressSanitizer + UndefinedBehaviorSanitizer.
SANITIZE = -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
# With Debian's gcc-aarch64-linux-gnu and qemu-user installed, `make test`
# also cross-compiles the kernel and quantization tests for arm64 (NEON
# kernels; build/test_kernels) and runs them under qemu.
ARM64_CC ?= aarch64-linux-gnu-gcc
HAVE_ARM64 := $(and $(shell command -v $(ARM64_CC) 2>/dev/null),$(shell command -v qemu-aarch64 2>/dev/null))
test: test-plain test-sanitize $(if $(HAVE_ARM64),test-arm64) fuzz-if-clang

# The client suite (tests/client: OpenAI's npm client, the chat page in headless
# Chromium) runs in the plain build only: under the sanitizers it is slow and
# adds nothing. Its packages are installed here when npm is found (the
# lockfile pins them); without npm the suite reports how to get them.
CLIENT_TESTS ?= 1
NPM := $(shell command -v npm 2>/dev/null)
CLIENT_DEPS = $(if $(filter 1,$(CLIENT_TESTS)),$(if $(NPM),tests/client/node_modules))

test-plain: $(BUILD)/llamac $(BUILD)/test_llamac $(CLIENT_DEPS)
	tests/run.sh $(BUILD) $(if $(filter 1,$(CLIENT_TESTS)),--client)

tests/client/node_modules: tests/client/package.json tests/client/package-lock.json
	npm ci --prefix tests/client
	@touch $@

test-sanitize:
	$(MAKE) --no-print-directory BUILD=$(BUILD)-sanitize OPT="-O1 -g" CFLAGS="$(SANITIZE)" CUDA=0 CLIENT_TESTS=0 test-plain

# Fuzzing the GGUF reader (libFuzzer + ASan + UBSan, clang only): the reader and
# everything that interprets a parsed file, seeded with files our own writer
# makes. `make test` runs it for FUZZ_TIME seconds when clang can build it, then
# the safetensors/config.json fuzzer for FUZZ_ST_TIME seconds.
FUZZ_CC   ?= clang
FUZZ_TIME ?= 30
FUZZ_LIB   = src/formats/gguf.c src/formats/tensor.c src/formats/quant.c src/formats/llama2c.c \
             src/formats/mapped_file.c src/core/error.c src/core/utf8.c src/model/llama_gguf.c \
             src/formats/llama2c_v2.c src/formats/gguf_write.c $(wildcard src/tokenizer/*.c)
FUZZ_FLAGS = -std=c11 -D_GNU_SOURCE -Iinclude -Isrc -g -O1 -fno-sanitize-recover=all
$(BUILD)/fuzz/fuzz_gguf: tests/fuzz/fuzz_gguf.c $(FUZZ_LIB) $(wildcard src/*/*.h)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_FLAGS) -fsanitize=fuzzer,address,undefined -o $@ tests/fuzz/fuzz_gguf.c $(FUZZ_LIB) -lm -lpcre2-8 -lcjson
$(BUILD)/fuzz/make_seeds: tests/fuzz/make_seeds.c $(FUZZ_LIB) $(wildcard src/*/*.h)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_FLAGS) -fsanitize=address,undefined -o $@ tests/fuzz/make_seeds.c $(FUZZ_LIB) -lm -lpcre2-8 -lcjson

# The safetensors header parser and the config.json reader, fed the same bytes.
FUZZ_ST_LIB = src/formats/safetensors.c src/formats/json_file.c src/formats/tensor.c \
              src/formats/quant.c src/formats/mapped_file.c src/formats/llama2c.c \
              src/formats/llama2c_v2.c src/core/error.c src/model/llama_hf.c
FUZZ_ST_TIME ?= 15
$(BUILD)/fuzz/fuzz_safetensors: tests/fuzz/fuzz_safetensors.c $(FUZZ_ST_LIB) $(wildcard src/*/*.h)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_FLAGS) -fsanitize=fuzzer,address,undefined -o $@ tests/fuzz/fuzz_safetensors.c $(FUZZ_ST_LIB) -lm -lcjson
$(BUILD)/fuzz/make_st_seeds: tests/fuzz/make_st_seeds.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_FLAGS) -o $@ $<

fuzz: $(BUILD)/fuzz/fuzz_gguf $(BUILD)/fuzz/make_seeds $(BUILD)/fuzz/fuzz_safetensors $(BUILD)/fuzz/make_st_seeds
	@mkdir -p $(BUILD)/fuzz/seeds $(BUILD)/fuzz/corpus $(BUILD)/fuzz/st_seeds $(BUILD)/fuzz/st_corpus
	$(BUILD)/fuzz/make_seeds $(BUILD)/fuzz/seeds
	$(BUILD)/fuzz/make_st_seeds $(BUILD)/fuzz/st_seeds
	@echo "fuzz: $(FUZZ_TIME) s of fuzz_gguf (log: $(BUILD)/fuzz/log.txt)"
	@$(BUILD)/fuzz/fuzz_gguf -max_total_time=$(FUZZ_TIME) -max_len=16384 -timeout=10 \
	    -artifact_prefix=$(BUILD)/fuzz/ -print_final_stats=1 \
	    $(BUILD)/fuzz/corpus $(BUILD)/fuzz/seeds >$(BUILD)/fuzz/log.txt 2>&1; \
	    status=$$?; tail -n 25 $(BUILD)/fuzz/log.txt | grep -E 'ERROR|SUMMARY|crash-|stat::number_of_executed_units|cov:' | tail -n 8; \
	    if [ $$status -eq 0 ]; then echo "fuzz: passed"; else echo "fuzz: FAILED (exit $$status)"; fi; exit $$status
	@echo "fuzz: $(FUZZ_ST_TIME) s of fuzz_safetensors (log: $(BUILD)/fuzz/st_log.txt)"
	@$(BUILD)/fuzz/fuzz_safetensors -max_total_time=$(FUZZ_ST_TIME) -max_len=16384 -timeout=10 \
	    -artifact_prefix=$(BUILD)/fuzz/st- -print_final_stats=1 \
	    $(BUILD)/fuzz/st_corpus $(BUILD)/fuzz/st_seeds >$(BUILD)/fuzz/st_log.txt 2>&1; \
	    status=$$?; tail -n 25 $(BUILD)/fuzz/st_log.txt | grep -E 'ERROR|SUMMARY|crash-|stat::number_of_executed_units|cov:' | tail -n 8; \
	    if [ $$status -eq 0 ]; then echo "fuzz: passed"; else echo "fuzz: FAILED (exit $$status)"; fi; exit $$status

# Runs the fuzzer when clang can link libFuzzer here; says so when it cannot.
fuzz-if-clang:
	@if echo 'int LLVMFuzzerTestOneInput(const unsigned char *d, unsigned long n) { return 0; }' | \
	    $(FUZZ_CC) -x c - -fsanitize=fuzzer -o /dev/null 2>/dev/null; then \
	    $(MAKE) --no-print-directory fuzz; \
	else echo "fuzz: skipped ($(FUZZ_CC) with libFuzzer not found)"; fi

# The NEON kernels (static, under qemu-aarch64): once for plain ARMv8.0
# (vmull/vpadal int8 dots) and once with the dot-product extension (vdotq).
# The kernel-test binary needs neither PCRE2 nor cJSON, whose static arm64
# libraries Debian does not ship.
test-arm64:
	@command -v $(ARM64_CC) >/dev/null && command -v qemu-aarch64 >/dev/null || \
	    { echo "test-arm64 needs $(ARM64_CC) and qemu-aarch64 (apt-get install gcc-aarch64-linux-gnu qemu-user)"; exit 1; }
	$(MAKE) --no-print-directory BUILD=$(BUILD)-arm64 CC=$(ARM64_CC) CUDA=0 OPT=-O1 CFLAGS="-static" $(BUILD)-arm64/test_kernels
	$(MAKE) --no-print-directory BUILD=$(BUILD)-arm64-dotprod CC=$(ARM64_CC) CUDA=0 OPT=-O1 CFLAGS="-static -march=armv8.2-a+dotprod+fp16" $(BUILD)-arm64-dotprod/test_kernels
	for b in $(BUILD)-arm64 $(BUILD)-arm64-dotprod; do \
	    echo "$$b: quant, kernels"; qemu-aarch64 $$b/test_kernels || exit 1; \
	done

# Generates text with the default model: stories15M.bin, else tiny-gutenberg-15M.bin,
# from $LLAMAC_MODELS, ./models or ../shared/models (llamac generate without -m).
PROMPT ?= Once upon a time
run: $(BUILD)/llamac
	$(BUILD)/llamac generate -p "$(PROMPT)" -n 200

# Downloads the public TinyStories model and the Llama 2 tokenizer into ./models.
models:
	mkdir -p models
	curl -fL -o models/stories15M.bin https://huggingface.co/karpathy/tinyllamas/resolve/main/stories15M.bin
	curl -fL -o models/tokenizer.bin https://github.com/karpathy/llama2.c/raw/master/tokenizer.bin

# Prompt (pp256) and generation (tg128) speed on random-weight stories15M and
# stories110M checkpoints, then stories110M's generation with its matrices in
# f16, q8_0 and q4_0 (issue 4's CPU bar), against the measured memory
# bandwidth. Not a test.
BENCH_MODELS = $(BUILD)/bench-models
bench: $(BUILD)/llamac
	@mkdir -p $(BENCH_MODELS)
	@for shape in stories15M stories110M; do \
	    [ -f $(BENCH_MODELS)/$$shape.bin ] || $(BUILD)/llamac mkmodel --shape $$shape --out $(BENCH_MODELS)/$$shape.bin || exit 1; \
	    $(BUILD)/llamac bench -m $(BENCH_MODELS)/$$shape.bin -p 256 -n 128 -r 5 --membw || exit 1; echo; \
	done
	@for dtype in f16 q8_0 q4_0 q8_runq; do \
	    $(BUILD)/llamac bench -m $(BENCH_MODELS)/stories110M.bin --dtype $$dtype -p 0 -n 128 -r 5 --membw || exit 1; echo; \
	done

format:
	clang-format -i $$(find include src cli tests dev -name '*.[ch]' -o -name '*.cu' -o -name '*.cuh')

clean:
	rm -rf $(BUILD) $(BUILD)-sanitize $(BUILD)-arm64 $(BUILD)-arm64-dotprod build-stamps
