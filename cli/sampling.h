/* Sampling flags shared by generate and chat. */
#ifndef LLAMAC_CLI_SAMPLING_H
#define LLAMAC_CLI_SAMPLING_H

#include "args.h"
#include "llamac.h"

typedef struct sampling_opts {
    lc_sampler_params params;
    bool seed_given;
} sampling_opts;

void sampling_defaults(sampling_opts *s);
int sampling_specs(sampling_opts *s, arg_spec *specs, int n);
/* Creates the sampler (picking a seed from the clock unless -s was given). */
int open_sampler(sampling_opts *s, int32_t vocab, lc_sampler **out);

#endif
