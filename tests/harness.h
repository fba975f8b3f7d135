/* A minimal test harness: each test records failures through CHECK and the
 * runner prints one line per test and a final "N passed, N failed". */
#ifndef LLAMAC_TESTS_HARNESS_H
#define LLAMAC_TESTS_HARNESS_H

#include <stdbool.h>
#include <stdio.h>

typedef struct test_ctx {
    const char *name;
    int failures;
    char first[512];   /* the first failure's message */
    char skipped[256]; /* why the test could not run here, when it could not */
} test_ctx;

/* Marks the test skipped when no CUDA device is present; true then. */
bool skip_without_gpu(test_ctx *t);

void test_fail(test_ctx *t, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#define CHECK(t, cond, ...)                                                                        \
    do {                                                                                           \
        if (!(cond)) test_fail((t), __FILE__, __LINE__, __VA_ARGS__);                              \
    } while (0)

/* Where ../shared lives: $LLAMAC_SHARED, else ../shared. Writes dir/rel into buf
 * (rel itself when it is an absolute path). */
const char *shared_path(char *buf, size_t cap, const char *rel);
/* A scratch file path unique to this process. */
const char *temp_path(char *buf, size_t cap, const char *name);
/* Reads a whole file; NULL when it cannot. */
char *read_file(const char *path, size_t *len);

/* Loads ../shared/<rel>; on failure records it in t and returns NULL. */
struct lc_model *load_shared_model(test_ctx *t, const char *rel);
struct lc_tokenizer *load_shared_tokenizer(test_ctx *t, const char *rel);
/* `llamac quantize` of ../shared/<in_rel> (tokenizer tok_rel, or NULL: the
 * model's own) to the GGUF `out` of `type`; paths starting with '/' as given.
 * Records a failure in t and returns false when it fails. */
bool quantize_shared(test_ctx *t, const char *in_rel, const char *tok_rel, const char *out,
                     const char *type);

typedef void (*test_fn)(test_ctx *t);
typedef struct test_case {
    const char *name;
    test_fn fn;
} test_case;

#endif
