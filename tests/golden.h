/* Logits against golden files (test_logits.c): the comparisons every model
 * format's logits tests share. */
#ifndef LLAMAC_TESTS_GOLDEN_H
#define LLAMAC_TESTS_GOLDEN_H

#include <stddef.h>

#include "harness.h"
#include "llamac.h"

/* What a configuration must reach: every logit within max_abs of the
 * reference, and the argmax equal at >= min_argmax of the positions (1: all). */
typedef struct golden_bound {
    float max_abs;
    double min_argmax;
} golden_bound;
#define GOLDEN_EXACT ((golden_bound){1e-3f, 1.0})

/* Every row of ../shared/golden/logits/<golden_name>.json against the model
 * ../shared/<model_file> (a file or folder), in each configuration this
 * machine can create, with batches of 1 and 512. */
void golden_check_within(test_ctx *t, const char *model_file, const char *golden_name,
                         const lc_engine_options *configs, const char *const *names,
                         size_t n_configs, golden_bound want);
/* The same within GOLDEN_EXACT on every CPU kernel set this machine has. */
void golden_check(test_ctx *t, const char *model_file, const char *golden_name);

/* Logits of every position of `ids` in one sequence, run in batches of
 * n_batch on 2 threads; malloc'd (n_ids, vocab), NULL after a recorded failure. */
float *golden_run(test_ctx *t, const lc_model *m, const lc_token *ids, int n_ids,
                  const lc_engine_options *config, int n_batch);

#endif
