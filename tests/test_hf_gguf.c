/* Hugging Face folders converted to GGUF (lc_quantize): the Llama 3 folder
 * (GQA, rope_theta 500000, Llama 3.1 RoPE scaling as rope_freqs.weight, tied
 * embeddings, bf16, byte-level BPE) gives bit-identical logits in bf16 and
 * f32, q8_0 within a measured bound, the same token ids and chat template; a
 * linear-scaled folder keeps its scaling; malformed rope_freqs tensors are
 * refused; stories260K.hf converted matches stories260K.bin. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "formats/gguf.h"
#include "golden.h"
#include "harness.h"
#include "hf_folder.h"
#include "llamac.h"
#include "model/model.h"

#define LLAMA3     "models/tiny-gutenberg-llama3.hf"
#define Q8_0_BOUND 0.5f

/* The golden "king" and "chat" ids of the Llama 3 model (malloc'd). */
static int golden_ids(test_ctx *t, const char *seq, lc_token **ids) {
    cJSON *root = hf_read_json_shared(t, "golden/logits/tiny-gutenberg-llama3.json");
    const cJSON *arr =
        cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetObjectItem(root, "seqs"), seq), "ids");
    int n = cJSON_GetArraySize(arr);
    *ids = malloc((size_t)(n > 0 ? n : 1) * sizeof **ids);
    for (int i = 0; i < n; i++) (*ids)[i] = (lc_token)cJSON_GetArrayItem(arr, i)->valueint;
    CHECK(t, n > 0, "golden %s ids missing", seq);
    cJSON_Delete(root);
    return n;
}

/* Largest |a - b| over every position of both golden sequences; -1 after a
 * failure. `dtype_a` is how model a's weights are held (NULL: as stored). */
static float max_diff(test_ctx *t, const lc_model *a, const char *dtype_a, const lc_model *b) {
    const char *seqs[] = {"king", "chat"};
    const size_t vocab = (size_t)lc_model_config(a)->vocab_size;
    float worst = 0;
    for (int s = 0; s < 2; s++) {
        lc_token *ids;
        int n = golden_ids(t, seqs[s], &ids);
        const lc_engine_options oa = {.device = "cpu", .dtype = dtype_a}, ob = {.device = "cpu"};
        float *la = golden_run(t, a, ids, n, &oa, 512), *lb = golden_run(t, b, ids, n, &ob, 512);
        if (!la || !lb) worst = -1;
        for (size_t i = 0; worst >= 0 && i < (size_t)n * vocab; i++) {
            float d = fabsf(la[i] - lb[i]);
            if (!(d <= worst)) worst = d; /* NaN counts as worst */
        }
        free(la);
        free(lb);
        free(ids);
    }
    return worst;
}

static void check_rope_equal(test_ctx *t, const lc_model *a, const lc_model *b, const char *what) {
    const lc_config *ca = lc_model_config(a), *cb = lc_model_config(b);
    float fa[512], fb[512];
    CHECK(t, ca->head_dim == cb->head_dim && ca->head_dim <= 1024, "%s: head_dim", what);
    if (ca->head_dim != cb->head_dim || ca->head_dim > 1024) return;
    model_rope_freqs(ca, fa);
    model_rope_freqs(cb, fb);
    CHECK(t, memcmp(fa, fb, (size_t)(ca->head_dim / 2) * sizeof *fa) == 0,
          "%s: RoPE frequencies differ", what);
}

/* The folder as bf16 and f32 GGUF: the same frequencies bit for bit, the
 * same logits bit for bit at every golden position, and the golden
 * comparison against transformers passes on the GGUF itself. */
void test_hf_gguf_llama3_bit_identical(test_ctx *t) {
    const char *types[] = {"bf16", "f32"};
    lc_model *folder = load_shared_model(t, LLAMA3);
    if (!folder) return;
    for (int k = 0; k < 2; k++) {
        char path[1024];
        temp_path(path, sizeof path, k ? "l3.f32.gguf" : "l3.bf16.gguf");
        if (!quantize_shared(t, LLAMA3, NULL, path, types[k])) continue;
        lc_model *g = load_shared_model(t, path);
        if (g) {
            const lc_config *c = lc_model_config(g);
            CHECK(t,
                  c->rope_freq_factors && c->n_kv_heads == 2 && c->head_dim == 32 &&
                      c->rope_theta == 500000.0f && c->shared_classifier,
                  "%s: config %d kv heads, head_dim %d, theta %g", types[k], c->n_kv_heads,
                  c->head_dim, (double)c->rope_theta);
            check_rope_equal(t, folder, g, types[k]);
            /* f32: the folder's bf16 weights widened at load, as the file holds them. */
            float d = max_diff(t, folder, k ? "f32" : NULL, g);
            CHECK(t, d == 0.0f, "%s GGUF logits differ from the folder's by up to %g", types[k],
                  (double)d);
            if (k == 0) golden_check(t, path, "tiny-gutenberg-llama3");
        }
        lc_model_free(g);
        remove(path);
    }
    lc_model_free(folder);
}

/* q8_0 against the folder's bf16 logits. Measured (2026-11, both golden
 * sequences, batch 512, AVX-512 kernels): max |diff| 0.257; the bound leaves
 * headroom for other kernel sets. */
void test_hf_gguf_llama3_q8_0(test_ctx *t) {
    char path[1024];
    temp_path(path, sizeof path, "l3.q8_0.gguf");
    lc_model *folder = load_shared_model(t, LLAMA3), *g = NULL;
    if (folder && quantize_shared(t, LLAMA3, NULL, path, "q8_0") &&
        (g = load_shared_model(t, path))) {
        float d = max_diff(t, folder, NULL, g);
        if (getenv("LLAMAC_TEST_VERBOSE")) printf("     q8_0 vs folder: max |diff| %g\n", d);
        CHECK(t, d >= 0 && d <= Q8_0_BOUND, "q8_0 logits differ by %g > %g", (double)d,
              (double)Q8_0_BOUND);
    }
    lc_model_free(g);
    lc_model_free(folder);
    remove(path);
}

/* The GGUF's own vocabulary encodes real text to the folder's ids; the chat
 * template and the end-of-sequence ids survive. */
void test_hf_gguf_llama3_tokenizer(test_ctx *t) {
    char path[1024], text_path[1024];
    temp_path(path, sizeof path, "l3.tok.gguf");
    lc_model *folder = load_shared_model(t, LLAMA3), *g = NULL;
    lc_tokenizer *ta = load_shared_tokenizer(t, LLAMA3), *tb = NULL;
    size_t len = 0;
    char *text = read_file(
        shared_path(text_path, sizeof text_path, "corpora/tiny-gutenberg-heldout.txt"), &len);
    CHECK(t, text != NULL, "%s unreadable", text_path);
    lc_error err;
    if (folder && ta && text && quantize_shared(t, LLAMA3, NULL, path, "q4_0") &&
        (g = load_shared_model(t, path)) && lc_tokenizer_from_model(g, &tb, &err) == LC_OK) {
        if (len > 200000) text[len = 200000] = '\0'; /* plenty, and quick */
        lc_token *ia = NULL, *ib = NULL;
        size_t na = 0, nb = 1;
        CHECK(t, lc_tokenizer_encode(ta, text, len, true, false, &ia, &na, &err) == LC_OK, "%s",
              err.msg);
        CHECK(t, lc_tokenizer_encode(tb, text, len, true, false, &ib, &nb, &err) == LC_OK, "%s",
              err.msg);
        long first = -1;
        for (size_t i = 0; ia && ib && na == nb && i < na && first < 0; i++)
            if (ia[i] != ib[i]) first = (long)i;
        CHECK(t, ia && ib && na == nb && first < 0 && na > 1000,
              "GGUF tokenizer: %zu ids vs the folder's %zu, first difference at %ld", nb, na,
              first);
        free(ia);
        free(ib);
        const char *tpa = lc_model_chat_template(folder), *tpb = lc_model_chat_template(g);
        CHECK(t, tpa && tpb && strcmp(tpa, tpb) == 0, "chat template lost or changed");
        const lc_token *ea, *eb;
        int nea = lc_model_eos_ids(folder, &ea), neb = lc_model_eos_ids(g, &eb);
        for (int i = 0; i < nea; i++) {
            bool found = false;
            for (int j = 0; j < neb; j++) found |= ea[i] == eb[j];
            CHECK(t, found, "end-of-sequence id %d lost", ea[i]);
        }
        CHECK(t, lc_model_bos_id(g) == 128000, "bos %d", lc_model_bos_id(g));
    } else if (g) {
        CHECK(t, false, "GGUF tokenizer: %s", err.msg);
    }
    free(text);
    lc_tokenizer_free(ta);
    lc_tokenizer_free(tb);
    lc_model_free(g);
    lc_model_free(folder);
    remove(path);
}

/* A copy of `src` with rope_freqs.weight's description or data changed:
 * what = "type" (F32 -> F16), "length" (16 -> 8 values), "zero" or "nan"
 * (one value). */
static bool write_bad(test_ctx *t, const char *src, const char *dst, const char *what) {
    size_t len;
    char *b = read_file(src, &len);
    const char *name = "rope_freqs.weight";
    char *p = b ? memmem(b, len, name, strlen(name)) : NULL;
    CHECK(t, p != NULL, "%s: no rope_freqs.weight", src);
    if (!p) {
        free(b);
        return false;
    }
    /* tensor info: name, n_dims u32, ne u64[n_dims], type u32, offset u64 */
    uint8_t *info = (uint8_t *)p + strlen(name);
    uint32_t n_dims, type;
    uint64_t ne0;
    memcpy(&n_dims, info, 4);
    memcpy(&ne0, info + 4, 8);
    memcpy(&type, info + 12, 4);
    CHECK(t, n_dims == 1 && ne0 == 16 && type == 0, "unexpected rope_freqs description");
    if (strcmp(what, "type") == 0) {
        type = 1;
        memcpy(info + 12, &type, 4);
    } else if (strcmp(what, "length") == 0) {
        ne0 = 8;
        memcpy(info + 4, &ne0, 8);
    } else {
        gguf_file g;
        uint64_t at = 0;
        if (gguf_parse(&g, (const uint8_t *)b, len, src, NULL) == LC_OK) {
            for (uint64_t i = 0; i < g.n_tensors; i++)
                if (gguf_str_eq(g.tensors[i].name, name)) at = g.tensors[i].offset;
            gguf_free(&g);
        }
        CHECK(t, at > 0 && at + 64 <= len, "rope_freqs data not found");
        float bad = strcmp(what, "zero") == 0 ? 0.0f : NAN;
        if (at > 0 && at + 64 <= len) memcpy(b + at + 4 * 5, &bad, sizeof bad);
    }
    FILE *f = fopen(dst, "wb");
    bool ok = f && fwrite(b, 1, len, f) == len;
    if (f) fclose(f);
    free(b);
    CHECK(t, ok, "cannot write %s", dst);
    return ok;
}

void test_hf_gguf_bad_rope_freqs(test_ctx *t) {
    char good[1024], bad[1024];
    temp_path(good, sizeof good, "l3.rope.gguf");
    temp_path(bad, sizeof bad, "l3.badrope.gguf");
    if (!quantize_shared(t, LLAMA3, NULL, good, "q4_0")) return;
    const struct {
        const char *what, *needle;
    } cases[] = {{"type", "rope_freqs.weight"},
                 {"length", "rope_freqs.weight"},
                 {"zero", "must be finite and positive"},
                 {"nan", "must be finite and positive"}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        if (!write_bad(t, good, bad, cases[i].what)) continue;
        lc_model *m = NULL;
        lc_error err = {0};
        lc_status st = lc_model_load(bad, &m, &err);
        if (getenv("LLAMAC_TEST_VERBOSE")) printf("     %s: %s\n", cases[i].what, err.msg);
        CHECK(t, st != LC_OK && strstr(err.msg, cases[i].needle) && strstr(err.msg, bad),
              "%s: status %d, message '%s'", cases[i].what, st, err.msg);
        lc_model_free(m);
        remove(bad);
    }
    remove(good);
}

/* Linear scaling survives as llama.rope.scaling.* keys: a stories260K folder
 * with factor 4 gives the same frequencies and logits as its GGUF. */
void test_hf_gguf_linear_scaling(test_ctx *t) {
    char dir[1024], path[1024];
    cJSON *config = hf_read_json_shared(t, "models/stories260K.hf/config.json");
    if (!config) return;
    hf_mkdir(dir, sizeof dir, "linear");
    hf_link_shared(dir, "model.safetensors", "models/stories260K.hf/model.safetensors");
    cJSON_DeleteItemFromObjectCaseSensitive(config, "rope_scaling");
    cJSON_AddItemToObject(config, "rope_scaling",
                          cJSON_Parse("{\"type\":\"linear\",\"factor\":4}"));
    hf_write_json(dir, "config.json", config);
    cJSON_Delete(config);
    temp_path(path, sizeof path, "linear.gguf");
    lc_model *a = NULL, *b = NULL;
    if (quantize_shared(t, dir, "models/tok512.bin", path, "f32") &&
        (a = load_shared_model(t, dir)) && (b = load_shared_model(t, path))) {
        const lc_config *c = lc_model_config(b);
        CHECK(t,
              c->rope_scaling == LC_ROPE_SCALING_LINEAR && c->rope_factor == 4.0f &&
                  !c->rope_freq_factors,
              "linear scaling misread from the GGUF");
        check_rope_equal(t, a, b, "linear");
        const lc_token ids[] = {1, 403, 407, 261, 378, 9, 300, 42, 7, 2, 100, 5};
        const lc_engine_options o = {.device = "cpu"};
        float *la = golden_run(t, a, ids, 12, &o, 512), *lb = golden_run(t, b, ids, 12, &o, 512);
        CHECK(t, la && lb && memcmp(la, lb, 12 * 512 * sizeof *la) == 0,
              "linear-scaled GGUF logits differ from the folder's");
        free(la);
        free(lb);
    }
    lc_model_free(a);
    lc_model_free(b);
    remove(path);
    hf_rmdir(dir);
}

/* stories260K.hf (f32, rotate-half q/k) converted: bit-identical to the
 * llama2.c file it was exported from. */
void test_hf_gguf_stories260k(test_ctx *t) {
    char path[1024];
    temp_path(path, sizeof path, "s260hf.gguf");
    lc_model *bin = load_shared_model(t, "models/stories260K.bin"), *g = NULL;
    if (bin && quantize_shared(t, "models/stories260K.hf", "models/tok512.bin", path, "f32") &&
        (g = load_shared_model(t, path))) {
        const lc_token ids[] = {1, 403, 407, 261, 378, 9, 300, 42, 7, 2, 100, 5};
        const lc_engine_options o = {.device = "cpu"};
        float *la = golden_run(t, bin, ids, 12, &o, 512), *lb = golden_run(t, g, ids, 12, &o, 512);
        CHECK(t, la && lb && memcmp(la, lb, 12 * 512 * sizeof *la) == 0,
              "stories260K.hf as GGUF differs from stories260K.bin");
        free(la);
        free(lb);
    }
    lc_model_free(bin);
    lc_model_free(g);
    remove(path);
}
