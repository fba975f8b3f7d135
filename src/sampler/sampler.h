/* What the engine needs of a sampler to let a backend draw on its own:
 * the rule's parameters and the next draw of the seeded generator. */
#ifndef LLAMAC_SAMPLER_SAMPLER_H
#define LLAMAC_SAMPLER_SAMPLER_H

#include "llamac.h"

const lc_sampler_params *sampler_params(const lc_sampler *s);
/* The uniform [0, 1) draw lc_sampler_sample would make next (0 at temperature 0,
 * where it makes none), advancing the generator the same way. */
float sampler_next_coin(lc_sampler *s);

#endif
