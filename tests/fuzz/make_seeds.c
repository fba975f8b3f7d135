/* Writes the fuzzer's seed corpus with our own GGUF writer (no third-party
 * files): a tiny llama model with every tensor type and a five-token
 * vocabulary, and two vocabulary-only files (SentencePiece and byte-level
 * BPE). Usage: make_seeds DIR */
#include <stdio.h>
#include <string.h>

#include "formats/gguf_write.h"
#include "formats/quant.h"
#include "tokenizer/tokenizer.h"

static void put_vocab(gguf_writer *w) {
    static const char *const pieces[] = {"<unk>", "<s>", "</s>",
                                         "\xE2\x96\x81"
                                         "Hello",
                                         "<0x0A>"};
    static const int32_t types[] = {2, 3, 3, 1, 6};
    gguf_put_string(w, "tokenizer.ggml.model", "llama", 5);
    gguf_put_array(w, "tokenizer.ggml.tokens", GGUF_STRING, 5);
    for (int i = 0; i < 5; i++) gguf_put_elem_string(w, pieces[i], strlen(pieces[i]));
    gguf_put_array(w, "tokenizer.ggml.scores", GGUF_FLOAT32, 5);
    for (int i = 0; i < 5; i++) gguf_put_elem_f32(w, (float)-i);
    gguf_put_array(w, "tokenizer.ggml.token_type", GGUF_INT32, 5);
    for (int i = 0; i < 5; i++) gguf_put_elem_i32(w, types[i]);
    gguf_put_u32(w, "tokenizer.ggml.bos_token_id", 1);
    gguf_put_u32(w, "tokenizer.ggml.eos_token_id", 2);
    gguf_put_bool(w, "tokenizer.ggml.add_bos_token", true);
}

static int write_model(const char *path) {
    gguf_writer w;
    gguf_writer_init(&w);
    gguf_put_string(&w, "general.architecture", "llama", 5);
    const char *keys[] = {"llama.context_length", "llama.embedding_length",
                          "llama.feed_forward_length", "llama.rope.dimension_count"};
    for (int i = 0; i < 4; i++) gguf_put_u32(&w, keys[i], 32);
    gguf_put_u32(&w, "llama.block_count", 1);
    gguf_put_u32(&w, "llama.attention.head_count", 1);
    gguf_put_f32(&w, "llama.attention.layer_norm_rms_epsilon", 1e-5f);
    put_vocab(&w);
    static const struct {
        const char *name;
        lc_dtype dtype;
        int64_t rows, cols;
    } tensors[] = {
        {"token_embd.weight", LC_DTYPE_F32, 5, 32},
        {"output_norm.weight", LC_DTYPE_F32, 32, 0},
        {"blk.0.attn_norm.weight", LC_DTYPE_F32, 32, 0},
        {"blk.0.ffn_norm.weight", LC_DTYPE_F32, 32, 0},
        {"blk.0.attn_q.weight", LC_DTYPE_Q8_0, 32, 32},
        {"blk.0.attn_k.weight", LC_DTYPE_Q4_0, 32, 32},
        {"blk.0.attn_v.weight", LC_DTYPE_F16, 32, 32},
        {"blk.0.attn_output.weight", LC_DTYPE_BF16, 32, 32},
        {"blk.0.ffn_gate.weight", LC_DTYPE_Q4_0, 32, 32},
        {"blk.0.ffn_up.weight", LC_DTYPE_Q4_0, 32, 32},
        {"blk.0.ffn_down.weight", LC_DTYPE_Q4_0, 32, 32},
    };
    const int n = sizeof tensors / sizeof tensors[0];
    lc_error err;
    for (int i = 0; i < n; i++) {
        int64_t shape[2] = {tensors[i].rows, tensors[i].cols};
        if (gguf_add_tensor(&w, tensors[i].name, tensors[i].dtype, tensors[i].cols ? 2 : 1, shape,
                            &err))
            goto fail;
    }
    if (gguf_writer_open(&w, path, &err)) goto fail;
    float row[32];
    uint8_t out[128];
    for (int i = 0; i < 32; i++) row[i] = (float)(i % 7) * 0.1f - 0.3f;
    for (int i = 0; i < n; i++) {
        int64_t cols = tensors[i].cols ? tensors[i].cols : tensors[i].rows;
        int64_t rows = tensors[i].cols ? tensors[i].rows : 1;
        quantize_row(tensors[i].dtype, row, out, cols);
        for (int64_t r = 0; r < rows; r++)
            if (gguf_writer_data(&w, out, (uint64_t)dtype_row_bytes(tensors[i].dtype, cols), &err))
                goto fail;
    }
    if (gguf_writer_finish(&w, &err)) goto fail;
    gguf_writer_free(&w);
    return 0;
fail:
    fprintf(stderr, "make_seeds: %s\n", err.msg);
    gguf_writer_free(&w);
    return 1;
}

static int write_vocab(const char *path) {
    gguf_writer w;
    lc_error err;
    gguf_writer_init(&w);
    gguf_put_string(&w, "general.architecture", "llama", 5);
    put_vocab(&w);
    int rc = gguf_writer_open(&w, path, &err) || gguf_writer_finish(&w, &err);
    if (rc) fprintf(stderr, "make_seeds: %s\n", err.msg);
    gguf_writer_free(&w);
    return rc;
}

/* A byte-level BPE ("gpt2") vocabulary: the 256 bytes in GPT-2's alphabet,
 * "hi" (one merge) and two control tokens. */
static int write_vocab_gpt2(const char *path) {
    gguf_writer w;
    lc_error err;
    char buf[4];
    gguf_writer_init(&w);
    gguf_put_string(&w, "tokenizer.ggml.model", "gpt2", 4);
    gguf_put_string(&w, "tokenizer.ggml.pre", "llama-bpe", 9);
    gguf_put_array(&w, "tokenizer.ggml.tokens", GGUF_STRING, 259);
    for (int b = 0; b < 256; b++) {
        char c = (char)b;
        gguf_put_elem_string(&w, buf, byte_unicode_encode(&c, 1, buf));
    }
    gguf_put_elem_string(&w, "hi", 2);
    gguf_put_elem_string(&w, "<|eot_id|>", 10);
    gguf_put_elem_string(&w, "<|begin_of_text|>", 17);
    gguf_put_array(&w, "tokenizer.ggml.token_type", GGUF_INT32, 259);
    for (int i = 0; i < 259; i++) gguf_put_elem_i32(&w, i < 257 ? 1 : 3);
    gguf_put_array(&w, "tokenizer.ggml.merges", GGUF_STRING, 1);
    gguf_put_elem_string(&w, "h i", 3);
    gguf_put_u32(&w, "tokenizer.ggml.bos_token_id", 258);
    gguf_put_u32(&w, "tokenizer.ggml.eos_token_id", 257);
    int rc = gguf_writer_open(&w, path, &err) || gguf_writer_finish(&w, &err);
    if (rc) fprintf(stderr, "make_seeds: %s\n", err.msg);
    gguf_writer_free(&w);
    return rc;
}

int main(int argc, char **argv) {
    if (argc != 2) return 2;
    char path[4096];
    snprintf(path, sizeof path, "%s/model.gguf", argv[1]);
    if (write_model(path)) return 1;
    snprintf(path, sizeof path, "%s/vocab.gguf", argv[1]);
    if (write_vocab(path)) return 1;
    snprintf(path, sizeof path, "%s/vocab-gpt2.gguf", argv[1]);
    return write_vocab_gpt2(path);
}
