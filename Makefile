# llamac — `make` builds build/llamac; `make test` runs the test suite (plain,
# then under AddressSanitizer + UndefinedBehaviorSanitizer); `make bench` prints speed.
CC       ?= cc
BUILD    ?= build
OPT      ?= -O3
CFLAGS   ?=
WARN      = -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wno-unused-parameter -Wno-format-truncation -Wno-missing-field-initializers
BASE      = -std=c11 -D_GNU_SOURCE -Iinclude -Isrc -pthread -MMD -MP $(WARN) $(OPT) $(CFLAGS)
LDLIBS    = -lm -pthread

LIB_SRC   = $(filter-out src/backend/cpu/kernels_simd.c,$(shell find src -name '*.c' | sort))
CLI_SRC   = $(shell find cli -name '*.c' | sort)
TEST_SRC  = $(shell find tests -name '*.c' | sort)

# The SIMD kernels are one source compiled once per instruction set; the
# dispatcher picks at run time, so the binary runs on any x86-64.
ARCH     := $(shell $(CC) -dumpmachine)
ifneq (,$(findstring x86_64,$(ARCH)))
SIMD_OBJ  = $(BUILD)/obj/kernels_avx2.o $(BUILD)/obj/kernels_avx512.o
FLAGS_avx2   = -mavx2 -mfma -mf16c
FLAGS_avx512 = -mavx512f -mavx512vl -mavx512bw -mavx512dq -mfma -mf16c
endif

LIB_OBJ   = $(LIB_SRC:%.c=$(BUILD)/obj/%.o) $(SIMD_OBJ)
CLI_OBJ   = $(CLI_SRC:%.c=$(BUILD)/obj/%.o)
TEST_OBJ  = $(TEST_SRC:%.c=$(BUILD)/obj/%.o)

# No built-in suffix rules: every rule is written here.
.SUFFIXES:
.PHONY: all test test-plain test-sanitize bench run clean format models
all: $(BUILD)/llamac

$(BUILD)/libllamac.a: $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/llamac: $(CLI_OBJ) $(BUILD)/libllamac.a
	$(CC) $(BASE) -o $@ $^ $(LDLIBS)

$(BUILD)/test_llamac: $(TEST_OBJ) $(BUILD)/libllamac.a
	$(CC) $(BASE) -o $@ $^ $(LDLIBS)

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(BASE) -c -o $@ $<

$(BUILD)/obj/kernels_%.o: src/backend/cpu/kernels_simd.c
	@mkdir -p $(dir $@)
	$(CC) $(BASE) $(FLAGS_$*) -ffp-contract=fast -DSIMD_ISA_$* -c -o $@ $<

-include $(LIB_OBJ:.o=.d) $(CLI_OBJ:.o=.d) $(TEST_OBJ:.o=.d)

# The suite, then again under AddressSanitizer + UndefinedBehaviorSanitizer.
SANITIZE = -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
test: test-plain test-sanitize

test-plain: $(BUILD)/llamac $(BUILD)/test_llamac
	tests/run.sh $(BUILD)

test-sanitize:
	$(MAKE) --no-print-directory BUILD=build-sanitize OPT="-O1 -g" CFLAGS="$(SANITIZE)" test-plain
