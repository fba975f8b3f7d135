/* libFuzzer target: arbitrary bytes through the safetensors header parser,
 * and the same bytes as a Hugging Face config.json (JSON parse, then the
 * LlamaForCausalLM config reader). Built by `make fuzz` with ASan + UBSan;
 * libFuzzer hands us an exactly sized heap copy, so a read past it is reported. */
#include <stdint.h>
#include <stdlib.h>

#include "formats/json_file.h"
#include "formats/safetensors.h"
#include "model/llama_hf.h"

/* Reads the first and last byte of every non-empty tensor: they must be in the input. */
static unsigned touch_tensors(const tensor_table *tt) {
    unsigned sum = 0;
    for (int i = 0; i < tt->count; i++) {
        const tensor *t = &tt->items[i];
        int64_t bytes = tensor_n_elements(t) * (int64_t)dtype_info(t->dtype)->block_bytes;
        const uint8_t *p = t->data;
        if (bytes > 0) sum += p[0] + p[bytes - 1];
    }
    return sum;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    tensor_table tt = {0};
    lc_error err;
    if (safetensors_parse(data, size, "fuzz", &tt, &err) == LC_OK) (void)touch_tensors(&tt);
    tensor_table_free(&tt);
    cJSON *root;
    if (json_parse_buffer((const char *)data, size, "fuzz", &root, &err) == LC_OK) {
        lc_config cfg;
        model_tokens special;
        (void)llama_hf_config(root, "fuzz", &cfg, &special, &err);
        cJSON_Delete(root);
    }
    return 0;
}
