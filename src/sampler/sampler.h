/* What the engine needs of a sampler to let a backend draw on its own:
 * the rule's parameters and the next draw of the seeded generator. */
#ifndef LLAMAC_SAMPLER_SAMPLER_H
#define LLAMAC_SAMPLER_SAMPLER_H

#include <stddef.h>

#include "llamac.h"

const lc_sampler_params *sampler_params(const lc_sampler *s);
/* The uniform [0, 1) draw lc_sampler_sample would make next (0 at temperature 0,
 * where it makes none), advancing the generator the same way. */
float sampler_next_coin(lc_sampler *s);
/* lc_sampler_sample's rule as a function of its draw: the token for params
 * p and coin (from sampler_next_coin) over n logits, which it overwrites;
 * scratch holds sampler_scratch_bytes(n). Lets a backend draw rows in
 * parallel, each with its own scratch. */
lc_token sampler_draw(const lc_sampler_params *p, float coin, float *logits, int32_t n,
                      void *scratch);
size_t sampler_scratch_bytes(int32_t vocab);

#endif
