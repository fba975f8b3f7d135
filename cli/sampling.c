#include "sampling.h"

#include <stdio.h>
#include <time.h>

#include "common.h"

void sampling_defaults(sampling_opts *s) {
    s->params = (lc_sampler_params){.temperature = 0.8f, .top_p = 0.9f, .top_k = 0, .seed = 0};
    s->seed_given = false;
}

int sampling_specs(sampling_opts *s, arg_spec *specs, int n) {
    specs[n++] =
        (arg_spec){"temperature",          't', ARG_FLOAT,
                   &s->params.temperature, "T", "sampling temperature; 0 is greedy (default: 0.8)"};
    specs[n++] = (arg_spec){
        "top-p",          0,   ARG_FLOAT,
        &s->params.top_p, "P", "nucleus sampling mass in (0, 1]; 1 disables (default: 0.9)"};
    specs[n++] = (arg_spec){
        "top-k",          0,   ARG_INT,
        &s->params.top_k, "K", "sample among the K likeliest tokens; 0 disables (default: 0)"};
    specs[n++] = (arg_spec){
        "seed",          's', ARG_U64,
        &s->params.seed, "N", "random seed; the same seed gives the same text (default: clock)",
        &s->seed_given};
    return n;
}

int open_sampler(sampling_opts *s, int32_t vocab, lc_sampler **out) {
    if (!s->seed_given) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        s->params.seed = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
    }
    lc_error err;
    if (lc_sampler_create(&s->params, vocab, out, &err)) return report(NULL, &err);
    return 0;
}
