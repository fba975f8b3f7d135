/* Writes the safetensors fuzzer's seeds (no third-party files): small valid
 * safetensors files of each dtype, and Llama-style config.json texts.
 * Usage: make_st_seeds DIR */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

static int write_seed(const char *dir, const char *name, const char *header, size_t data_len) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f) return 1;
    const uint64_t n = strlen(header);
    uint8_t le[8];
    for (int i = 0; i < 8; i++) le[i] = (uint8_t)(n >> (8 * i));
    fwrite(le, 1, 8, f);
    fwrite(header, 1, n, f);
    for (size_t i = 0; i < data_len; i++) fputc((int)(i * 37 & 0xff), f);
    return fclose(f) != 0;
}

static int write_text(const char *dir, const char *name, const char *text) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f) return 1;
    fputs(text, f);
    return fclose(f) != 0;
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: make_st_seeds DIR\n");
        return 2;
    }
    int bad = 0;
    bad |= write_seed(argv[1], "three.safetensors",
                      "{\"__metadata__\":{\"format\":\"pt\"},"
                      "\"model.embed_tokens.weight\":{\"dtype\":\"F32\",\"shape\":[4,2],"
                      "\"data_offsets\":[0,32]},"
                      "\"model.norm.weight\":{\"dtype\":\"BF16\",\"shape\":[2],"
                      "\"data_offsets\":[32,36]},"
                      "\"lm_head.weight\":{\"dtype\":\"F16\",\"shape\":[4,2],"
                      "\"data_offsets\":[36,52]}}  ",
                      52);
    bad |= write_seed(argv[1], "empty.safetensors",
                      "{\"e\":{\"dtype\":\"F16\",\"shape\":[0,8],\"data_offsets\":[0,0]}}", 0);
    bad |= write_text(argv[1], "config.json",
                      "{\"architectures\":[\"LlamaForCausalLM\"],\"model_type\":\"llama\","
                      "\"hidden_size\":64,\"intermediate_size\":172,\"num_hidden_layers\":5,"
                      "\"num_attention_heads\":8,\"num_key_value_heads\":4,\"head_dim\":8,"
                      "\"vocab_size\":512,\"max_position_embeddings\":512,\"rms_norm_eps\":1e-05,"
                      "\"rope_theta\":500000.0,\"tie_word_embeddings\":true,\"bos_token_id\":1,"
                      "\"eos_token_id\":[2,3],\"rope_scaling\":{\"rope_type\":\"llama3\","
                      "\"factor\":8.0,\"low_freq_factor\":1.0,\"high_freq_factor\":4.0,"
                      "\"original_max_position_embeddings\":8192}}");
    bad |= write_text(argv[1], "config_linear.json",
                      "{\"model_type\":\"llama\",\"hidden_size\":64,\"intermediate_size\":172,"
                      "\"num_hidden_layers\":1,\"num_attention_heads\":8,\"vocab_size\":512,"
                      "\"max_position_embeddings\":512,\"rope_scaling\":{\"type\":\"linear\","
                      "\"factor\":2},\"eos_token_id\":2}");
    return bad;
}
