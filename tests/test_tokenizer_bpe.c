/* Byte-level BPE (Llama 3) against tiktoken's own ids (the fixture), Meta's
 * tokenizer.model against Hugging Face's tokenizer.json and a GGUF "gpt2"
 * vocabulary on whole corpora, the golden sequences of the Llama 3 logits
 * test, special tokens only on request, U+FFFD for invalid UTF-8, round
 * trips, long runs, and clear errors for malformed files. */
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "core/utf8.h"
#include "formats/gguf_write.h"
#include "harness.h"
#include "json.h"
#include "llamac.h"
#include "tokenizer/tokenizer.h"

#define TIKTOKEN  "models/llama3-tokenizer.model"
#define HF_DIR    "models/tiny-gutenberg-llama3.hf"
#define HF_JSON   HF_DIR "/tokenizer.json"
#define HF_CONFIG HF_DIR "/tokenizer_config.json"
/* Made by the lead with tiktoken (dev/tokenizer/make_llama3_fixture.py). */
#define FIXTURE "tests/fixtures/llama3_tiktoken.json"

static const char *const LLAMA3_FILES[] = {TIKTOKEN, HF_JSON};

/* Encodes with the given options; NULL (and a failed check) on error. */
static lc_token *encode(test_ctx *t, const lc_tokenizer *tok, const char *text, size_t len,
                        bool bos, bool special, size_t *n) {
    lc_encode_options o = {bos, false, special};
    lc_token *ids = NULL;
    lc_error err;
    if (lc_tokenizer_encode_ex(tok, text, len, &o, &ids, n, &err)) {
        CHECK(t, false, "encode: %s", err.msg);
        return NULL;
    }
    return ids;
}

static bool same_ids(const lc_token *a, size_t na, const lc_token *b, size_t nb) {
    return na == nb && (na == 0 || memcmp(a, b, na * sizeof *a) == 0);
}

/* The first index where two id lists differ, for messages. */
static size_t first_difference(const lc_token *a, size_t na, const lc_token *b, size_t nb) {
    size_t i = 0;
    while (i < na && i < nb && a[i] == b[i]) i++;
    return i;
}

/* Decodes through the streaming detokenizer. */
static char *detokenize_all(const lc_tokenizer *tok, const lc_token *ids, size_t n, size_t *len) {
    char *out = malloc(n * LC_DETOKENIZE_BUF + 1);
    size_t k = 0;
    lc_detokenizer dt;
    lc_detokenizer_init(&dt);
    for (size_t i = 0; i < n; i++) k += lc_detokenize(tok, &dt, ids[i], out + k, LC_DETOKENIZE_BUF);
    out[k] = '\0';
    if (len) *len = k;
    return out;
}

/* The raw pieces back to back (special tokens as their text). */
static char *join_pieces(const lc_tokenizer *tok, const lc_token *ids, size_t n, size_t *len) {
    size_t total = 0, plen;
    for (size_t i = 0; i < n; i++) {
        lc_tokenizer_piece(tok, ids[i], &plen);
        total += plen;
    }
    char *out = malloc(total + 1);
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        const char *p = lc_tokenizer_piece(tok, ids[i], &plen);
        memcpy(out + k, p, plen);
        k += plen;
    }
    out[k] = '\0';
    *len = k;
    return out;
}

static size_t unhex(const char *hex, char *out) {
    size_t n = 0;
    for (; hex[0] && hex[1]; hex += 2) {
        unsigned v;
        sscanf(hex, "%2x", &v);
        out[n++] = (char)v;
    }
    return n;
}

static bool read_id_list(const json *arr, lc_token **ids, size_t *n) {
    if (!arr || arr->type != JSON_ARRAY) return false;
    *ids = malloc((arr->count + 1) * sizeof **ids);
    for (size_t i = 0; i < arr->count; i++) (*ids)[i] = (lc_token)arr->items[i]->number;
    *n = arr->count;
    return true;
}

void test_bpe_tiktoken_fixture(test_ctx *t) {
    const char *path = getenv("LLAMAC_BPE_FIXTURE"); /* another fixture, for development */
    if (!path || !*path) path = FIXTURE;
    char *text = read_file(path, NULL);
    if (!text) {
        snprintf(t->skipped, sizeof t->skipped,
                 "%s is absent (make it with dev/tokenizer/make_llama3_fixture.py)", path);
        return;
    }
    json *doc = json_parse(text);
    const json *cases = json_get(doc, "cases"), *n_vocab = json_get(doc, "n_vocab");
    CHECK(t, cases && cases->type == JSON_ARRAY && cases->count > 0, "%s: no cases", path);
    for (size_t f = 0; f < 2 && cases; f++) {
        lc_tokenizer *tok = load_shared_tokenizer(t, LLAMA3_FILES[f]);
        if (!tok) continue;
        CHECK(t, n_vocab && lc_tokenizer_vocab_size(tok) == (int32_t)n_vocab->number,
              "%s: %d tokens, the fixture's tokenizer %d", LLAMA3_FILES[f],
              lc_tokenizer_vocab_size(tok), n_vocab ? (int)n_vocab->number : -1);
        int passed = 0;
        for (size_t c = 0; c < cases->count; c++) {
            const json *hex = json_get(cases->items[c], "hex");
            lc_token *want[2] = {NULL, NULL};
            size_t n_want[2];
            if (!hex || hex->type != JSON_STRING ||
                !read_id_list(json_get(cases->items[c], "ids"), &want[0], &n_want[0]) ||
                !read_id_list(json_get(cases->items[c], "ids_special"), &want[1], &n_want[1])) {
                CHECK(t, false, "%s: case %zu is malformed", path, c);
                free(want[0]);
                break;
            }
            char *bytes = malloc(strlen(hex->string) / 2 + 1);
            size_t len = unhex(hex->string, bytes);
            bool ok = true;
            for (int special = 0; special < 2; special++) {
                size_t n;
                lc_token *ids = encode(t, tok, bytes, len, false, special, &n);
                if (ids && !same_ids(ids, n, want[special], n_want[special])) {
                    size_t at = first_difference(ids, n, want[special], n_want[special]);
                    CHECK(t, false,
                          "%s: case %zu (%.40s)%s: %zu ids, want %zu; first difference "
                          "at %zu: %d, want %d",
                          LLAMA3_FILES[f], c, hex->string, special ? " with specials" : "", n,
                          n_want[special], at, at < n ? ids[at] : -1,
                          at < n_want[special] ? want[special][at] : -1);
                }
                ok = ok && ids && same_ids(ids, n, want[special], n_want[special]);
                free(ids);
            }
            passed += ok;
            free(bytes);
            free(want[0]);
            free(want[1]);
        }
        CHECK(t, passed == (int)cases->count, "%s: %d of %zu fixture cases passed", LLAMA3_FILES[f],
              passed, cases->count);
        lc_tokenizer_free(tok);
    }
    json_free(doc);
    free(text);
}

/* Both files on whole corpora: identical ids, and fast (perplexity encodes
 * whole corpora at once). */
void test_bpe_json_matches_tiktoken(test_ctx *t) {
    lc_tokenizer *a = load_shared_tokenizer(t, TIKTOKEN), *b = load_shared_tokenizer(t, HF_JSON);
    static const char *const corpora[] = {"corpora/tiny-gutenberg-heldout.txt",
                                          "corpora/tinyshakespeare.txt"};
    for (size_t c = 0; a && b && c < 2; c++) {
        char path[1024];
        size_t len, na = 0, nb = 0;
        char *text = read_file(shared_path(path, sizeof path, corpora[c]), &len);
        CHECK(t, text != NULL, "cannot read %s", path);
        if (!text) continue;
        double t0 = lc_time_seconds();
        lc_token *ia = encode(t, a, text, len, true, false, &na);
        double seconds = lc_time_seconds() - t0;
        lc_token *ib = encode(t, b, text, len, true, false, &nb);
        if (ia && ib) {
            size_t at = first_difference(ia, na, ib, nb);
            CHECK(t, same_ids(ia, na, ib, nb),
                  "%s: tokenizer.model gives %zu ids, tokenizer.json %zu; first difference at %zu",
                  corpora[c], na, nb, at);
            /* a guard against quadratic work, loose enough for the sanitizers */
            CHECK(t, seconds < 5.0, "%s: %.2f s for %zu bytes", corpora[c], seconds, len);
            size_t back_len;
            char *back = join_pieces(a, ia + 1, na - 1, &back_len);
            CHECK(t, back_len == len && memcmp(back, text, len) == 0,
                  "%s: the pieces do not give the text back", corpora[c]);
            free(back);
        }
        free(ia);
        free(ib);
        free(text);
    }
    lc_tokenizer_free(a);
    lc_tokenizer_free(b);
}

/* The sequences of ../shared/golden/logits/tiny-gutenberg-llama3.json: decoded
 * to text and encoded again (specials parsed for the chat one), the same ids. */
void test_bpe_golden_sequences(test_ctx *t) {
    char path[1024];
    char *text =
        read_file(shared_path(path, sizeof path, "golden/logits/tiny-gutenberg-llama3.json"), NULL);
    CHECK(t, text != NULL, "cannot read %s", path);
    json *doc = text ? json_parse(text) : NULL;
    const json *seqs = json_get(doc, "seqs");
    CHECK(t, seqs && seqs->count >= 2, "%s: no sequences", path);
    for (size_t f = 0; f < 2 && seqs; f++) {
        lc_tokenizer *tok = load_shared_tokenizer(t, LLAMA3_FILES[f]);
        for (size_t s = 0; tok && s < seqs->count; s++) {
            lc_token *want;
            size_t n_want, n, len;
            if (!read_id_list(json_get(seqs->items[s], "ids"), &want, &n_want) || n_want < 2) {
                CHECK(t, false, "sequence %s has no ids", seqs->keys[s]);
                continue;
            }
            bool chat = false;
            for (size_t i = 1; i < n_want; i++) chat |= lc_tokenizer_is_special(tok, want[i]);
            CHECK(t, want[0] == lc_tokenizer_bos(tok), "%s does not start with BOS", seqs->keys[s]);
            /* BOS comes from add_bos; the rest from the text */
            char *piece_text = join_pieces(tok, want + 1, n_want - 1, &len);
            lc_token *ids = encode(t, tok, piece_text, len, true, chat, &n);
            CHECK(t, ids && same_ids(ids, n, want, n_want), "%s: '%s' %s: %zu ids, want %zu",
                  LLAMA3_FILES[f], seqs->keys[s], piece_text, n, n_want);
            free(ids);
            if (!chat) { /* the streaming decoder gives the same text */
                char *decoded = detokenize_all(tok, want, n_want, NULL);
                CHECK(t, strcmp(decoded, piece_text) == 0, "decoded '%s', want '%s'", decoded,
                      piece_text);
                free(decoded);
            }
            free(piece_text);
            free(want);
        }
        lc_tokenizer_free(tok);
    }
    json_free(doc);
    free(text);
}

/* Writes a GGUF "gpt2" vocabulary straight from tokenizer.json's vocab and
 * merges (read here with cJSON, not with the loader under test). */
static bool write_gguf_from_json(test_ctx *t, const char *out) {
    char p1[1024], p2[1024];
    size_t len, clen;
    char *text = read_file(shared_path(p1, sizeof p1, HF_JSON), &len);
    char *ctext = read_file(shared_path(p2, sizeof p2, HF_CONFIG), &clen);
    cJSON *root = text ? cJSON_ParseWithLength(text, len) : NULL;
    cJSON *config = ctext ? cJSON_ParseWithLength(ctext, clen) : NULL;
    const cJSON *model = cJSON_GetObjectItem(root, "model");
    const cJSON *vocab = cJSON_GetObjectItem(model, "vocab"),
                *merges = cJSON_GetObjectItem(model, "merges"),
                *added = cJSON_GetObjectItem(config, "added_tokens_decoder");
    bool ok = false;
    CHECK(t, vocab && merges && added, "cannot read %s and %s", p1, p2);
    if (vocab && merges && added) {
        int n = cJSON_GetArraySize(vocab) + cJSON_GetArraySize(added);
        const char **pieces = calloc((size_t)n, sizeof *pieces);
        int32_t *types = calloc((size_t)n, sizeof *types);
        const cJSON *v;
        cJSON_ArrayForEach(v, vocab) {
            if (v->valueint < 0 || v->valueint >= n) continue;
            pieces[v->valueint] = v->string;
            types[v->valueint] = 1; /* normal */
        }
        cJSON_ArrayForEach(v, added) {
            int id = atoi(v->string);
            if (id < 0 || id >= n) continue;
            pieces[id] = cJSON_GetObjectItem(v, "content")->valuestring;
            types[id] = 3; /* control */
        }
        gguf_writer w;
        gguf_writer_init(&w);
        gguf_put_string(&w, "tokenizer.ggml.model", "gpt2", 4);
        gguf_put_string(&w, "tokenizer.ggml.pre", "llama-bpe", 9);
        gguf_put_array(&w, "tokenizer.ggml.tokens", GGUF_STRING, (uint64_t)n);
        for (int i = 0; i < n; i++)
            gguf_put_elem_string(&w, pieces[i] ? pieces[i] : "", pieces[i] ? strlen(pieces[i]) : 0);
        gguf_put_array(&w, "tokenizer.ggml.token_type", GGUF_INT32, (uint64_t)n);
        for (int i = 0; i < n; i++) gguf_put_elem_i32(&w, types[i]);
        gguf_put_array(&w, "tokenizer.ggml.merges", GGUF_STRING,
                       (uint64_t)cJSON_GetArraySize(merges));
        char buf[1024];
        cJSON_ArrayForEach(v, merges) {
            if (cJSON_IsString(v)) { /* "a b" */
                gguf_put_elem_string(&w, v->valuestring, strlen(v->valuestring));
            } else { /* ["a", "b"] */
                int k = snprintf(buf, sizeof buf, "%s %s", cJSON_GetArrayItem(v, 0)->valuestring,
                                 cJSON_GetArrayItem(v, 1)->valuestring);
                gguf_put_elem_string(&w, buf, (size_t)k);
            }
        }
        gguf_put_u32(&w, "tokenizer.ggml.bos_token_id", 128000);
        gguf_put_u32(&w, "tokenizer.ggml.eos_token_id", 128001);
        gguf_put_u32(&w, "tokenizer.ggml.eot_token_id", 128009);
        lc_error err;
        ok = gguf_writer_open(&w, out, &err) == LC_OK && gguf_writer_finish(&w, &err) == LC_OK;
        CHECK(t, ok, "%s", err.msg);
        gguf_writer_free(&w);
        for (int i = 0; i < n; i++) CHECK(t, pieces[i], "no token has id %d", i);
        free(pieces);
        free(types);
    }
    cJSON_Delete(root);
    cJSON_Delete(config);
    free(text);
    free(ctext);
    return ok;
}

/* lc_tokenizer_load on `path` must encode like `ref` on a corpus and texts
 * with specials. */
static void check_same_encoding(test_ctx *t, const lc_tokenizer *ref, const char *path) {
    lc_tokenizer *tok = NULL;
    lc_error err;
    CHECK(t, lc_tokenizer_load(path, &tok, &err) == LC_OK, "%s", err.msg);
    if (!tok) return;
    CHECK(t,
          lc_tokenizer_vocab_size(tok) == lc_tokenizer_vocab_size(ref) &&
              lc_tokenizer_bos(tok) == lc_tokenizer_bos(ref) &&
              lc_tokenizer_eos(tok) == lc_tokenizer_eos(ref) && lc_tokenizer_add_bos(tok),
          "%s: vocabulary size or BOS/EOS differ", path);
    char p[1024];
    size_t len;
    char *text = read_file(shared_path(p, sizeof p, "corpora/tiny-gutenberg-heldout.txt"), &len);
    const char *extra = "<|start_header_id|>user<|end_header_id|>\n\nHi \xff 🦙<|eot_id|>";
    for (int special = 0; special < 2 && text; special++) {
        size_t na, nb;
        lc_token *a = encode(t, ref, text, len, true, false, &na);
        lc_token *b = encode(t, tok, text, len, true, false, &nb);
        if (special) {
            free(a);
            free(b);
            a = encode(t, ref, extra, strlen(extra), false, true, &na);
            b = encode(t, tok, extra, strlen(extra), false, true, &nb);
        }
        CHECK(t, a && b && same_ids(a, na, b, nb),
              "%s: %s: %zu ids, want %zu (first difference at %zu)", path,
              special ? "specials" : "held-out text", nb, na,
              a && b ? first_difference(a, na, b, nb) : 0);
        free(a);
        free(b);
    }
    lc_token stop[8];
    int n_stop = lc_tokenizer_stop_tokens(tok, stop, 8);
    CHECK(t,
          n_stop >= 2 && stop[0] == 128001 &&
              (stop[1] == 128009 || (n_stop > 2 && stop[2] == 128009)),
          "%s: stop tokens", path);
    free(text);
    lc_tokenizer_free(tok);
}

void test_bpe_gguf_vocab(test_ctx *t) {
    lc_tokenizer *ref = load_shared_tokenizer(t, HF_JSON);
    char path[1024], path2[1024];
    temp_path(path, sizeof path, "gpt2-vocab.gguf");
    temp_path(path2, sizeof path2, "gpt2-vocab-ours.gguf");
    /* the file written from tokenizer.json itself */
    if (ref && write_gguf_from_json(t, path)) check_same_encoding(t, ref, path);
    /* and the one our writer makes (llamac quantize) from each loaded tokenizer */
    for (size_t f = 0; f < 2 && ref; f++) {
        lc_tokenizer *tok = load_shared_tokenizer(t, LLAMA3_FILES[f]);
        gguf_writer w;
        gguf_writer_init(&w);
        lc_error err;
        bool ok = tok && tokenizer_write_gguf(&w, tok, &err) == LC_OK &&
                  gguf_writer_open(&w, path2, &err) == LC_OK &&
                  gguf_writer_finish(&w, &err) == LC_OK;
        CHECK(t, ok, "%s: writing its GGUF vocabulary: %s", LLAMA3_FILES[f], err.msg);
        gguf_writer_free(&w);
        if (ok) check_same_encoding(t, ref, path2);
        lc_tokenizer_free(tok);
    }
    remove(path);
    remove(path2);
    lc_tokenizer_free(ref);
}

void test_bpe_round_trip(test_ctx *t) {
    static const char *const texts[] = {
        "Hello world",
        " leading space, and a trailing one ",
        "  two leading spaces and\ttabs\nand newlines\n\n",
        "It's DON'T we'll 3.14159 1234567 $1,000.00 -- (parentheses) [brackets]",
        "Unicode: naïve café, Ελληνικά, русский, 日本語のテキスト, 한국어, العربية",
        "emoji 🦙🚀 👨‍👩‍👧 ❤️ 🇺🇸 and combining e\xcc\x81",
        "<|eot_id|> is text here, <|begin_of_text|> too",
        "code: int main(void) { return a[i++] << 2; }\n\tdef f(x):\n\t\treturn x\n",
        "x",
        "",
    };
    for (size_t f = 0; f < 2; f++) {
        lc_tokenizer *tok = load_shared_tokenizer(t, LLAMA3_FILES[f]);
        for (size_t i = 0; tok && i < sizeof texts / sizeof texts[0]; i++) {
            size_t n, len = strlen(texts[i]);
            lc_token *ids = encode(t, tok, texts[i], len, true, false, &n);
            if (!ids) continue;
            char *back = detokenize_all(tok, ids, n, NULL);
            CHECK(t, strcmp(back, texts[i]) == 0, "%s: '%s' came back as '%s'", LLAMA3_FILES[f],
                  texts[i], back);
            for (size_t k = 1; k < n; k++)
                CHECK(t, !lc_tokenizer_is_special(tok, ids[k]), "'%s' produced special token %d",
                      texts[i], ids[k]);
            free(back);
            free(ids);
        }
        lc_tokenizer_free(tok);
    }
}

void test_bpe_special_tokens(test_ctx *t) {
    for (size_t f = 0; f < 2; f++) {
        lc_tokenizer *tok = load_shared_tokenizer(t, LLAMA3_FILES[f]);
        if (!tok) continue;
        CHECK(t,
              lc_tokenizer_vocab_size(tok) == 128256 && lc_tokenizer_bos(tok) == 128000 &&
                  lc_tokenizer_eos(tok) == 128001 && lc_tokenizer_add_bos(tok),
              "%s: vocab %d, BOS %d, EOS %d", LLAMA3_FILES[f], lc_tokenizer_vocab_size(tok),
              lc_tokenizer_bos(tok), lc_tokenizer_eos(tok));
        static const struct {
            const char *text;
            lc_token id;
        } named[] = {{"<|begin_of_text|>", 128000},
                     {"<|end_of_text|>", 128001},
                     {"<|start_header_id|>", 128006},
                     {"<|end_header_id|>", 128007},
                     {"<|eot_id|>", 128009},
                     {"<|reserved_special_token_0|>", 128002},
                     {"<|not_a_token|>", -1},
                     {"Hello", 9906},
                     {"", -1}};
        for (size_t i = 0; i < sizeof named / sizeof named[0]; i++)
            CHECK(t, lc_tokenizer_token_id(tok, named[i].text) == named[i].id,
                  "%s: %s is %d, want %d", LLAMA3_FILES[f], named[i].text,
                  lc_tokenizer_token_id(tok, named[i].text), named[i].id);
        CHECK(t,
              lc_tokenizer_is_special(tok, 128009) && !lc_tokenizer_is_special(tok, 9906) &&
                  !lc_tokenizer_is_special(tok, -1) && !lc_tokenizer_is_special(tok, 128256),
              "is_special");
        lc_token stop[8];
        int n_stop = lc_tokenizer_stop_tokens(tok, stop, 8);
        bool eot = false;
        for (int i = 0; i < n_stop && i < 8; i++) eot |= stop[i] == 128009;
        CHECK(t, n_stop >= 2 && stop[0] == 128001 && eot,
              "stop tokens: EOS first, then <|eot_id|>");
        /* user text: the special's text is ordinary text; chat templates ask */
        const char *text = "a<|eot_id|>b";
        size_t n_plain, n_special;
        lc_token *plain = encode(t, tok, text, strlen(text), false, false, &n_plain);
        lc_token *special = encode(t, tok, text, strlen(text), false, true, &n_special);
        const lc_token want[] = {64, 128009, 65};
        CHECK(t, special && same_ids(special, n_special, want, 3), "parsed: %zu ids", n_special);
        bool leaked = false;
        for (size_t i = 0; plain && i < n_plain; i++) leaked |= plain[i] == 128009;
        CHECK(t, plain && n_plain > 3 && !leaked, "user text turned into a special token");
        /* special tokens print as nothing, their text is the piece */
        char *shown = special ? detokenize_all(tok, special, n_special, NULL) : NULL;
        CHECK(t, shown && strcmp(shown, "ab") == 0, "decoded '%s'", shown ? shown : "");
        size_t plen;
        const char *piece = lc_tokenizer_piece(tok, 128009, &plen);
        CHECK(t, piece && plen == 10 && memcmp(piece, "<|eot_id|>", 10) == 0, "piece of 128009");
        /* NULL options: BOS as the vocabulary asks, nothing else */
        lc_token *ids = NULL;
        size_t n = 0;
        lc_error err;
        CHECK(t,
              lc_tokenizer_encode_ex(tok, "<|eot_id|>", 10, NULL, &ids, &n, &err) == LC_OK &&
                  n > 2 && ids[0] == 128000 && ids[1] != 128009,
              "default options");
        free(ids);
        CHECK(t,
              lc_tokenizer_encode(tok, "", 0, true, true, &ids, &n, &err) == LC_OK && n == 2 &&
                  ids[0] == 128000 && ids[1] == 128001,
              "empty text with BOS and EOS");
        free(ids);
        free(shown);
        free(plain);
        free(special);
        lc_tokenizer_free(tok);
    }
    /* SentencePiece vocabularies keep their behaviour: parse_special changes nothing. */
    lc_tokenizer *spm = load_shared_tokenizer(t, "models/tokenizer.bin");
    if (spm) {
        size_t na, nb;
        lc_token *a = encode(t, spm, "<s> hi </s>", 11, true, false, &na);
        lc_token *b = encode(t, spm, "<s> hi </s>", 11, true, true, &nb);
        CHECK(t, a && b && same_ids(a, na, b, nb), "SentencePiece with parse_special");
        lc_token stop[4];
        CHECK(t, lc_tokenizer_stop_tokens(spm, stop, 4) >= 1 && stop[0] == 2,
              "Llama 2 stops at </s>");
        free(a);
        free(b);
        lc_tokenizer_free(spm);
    }
}

/* Invalid UTF-8 reads as U+FFFD per maximal subpart, as Python's
 * bytes.decode("utf-8", errors="replace"), so the ids are those of that text. */
void test_bpe_invalid_utf8(test_ctx *t) {
    static const struct {
        const char *bytes, *as_python_reads;
    } cases[] = {
        {"abc\xff\xfe"
         "def",
         "abc\xef\xbf\xbd\xef\xbf\xbd"
         "def"},
        {"caf\xc3", "caf\xef\xbf\xbd"},
        {"\xe4\xbd", "\xef\xbf\xbd"},
        {"\xed\xa0\x80 x", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd x"}, /* a surrogate: three */
        {"\xf0\x9f\x98 cut", "\xef\xbf\xbd cut"},                     /* a cut emoji: one */
        {"\xc0\xaf", "\xef\xbf\xbd\xef\xbf\xbd"},                     /* overlong: two */
        {"\xf4\x90\x80\x80", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"},
        {"\xe0\x80\x80", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"},
        {"\xe0\xa0", "\xef\xbf\xbd"},
    };
    char out[64];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t n = utf8_replace_invalid(cases[i].bytes, strlen(cases[i].bytes), out);
        CHECK(t,
              n == strlen(cases[i].as_python_reads) &&
                  memcmp(out, cases[i].as_python_reads, n) == 0,
              "case %zu: replacement differs from Python's", i);
    }
    lc_tokenizer *tok = load_shared_tokenizer(t, TIKTOKEN);
    for (size_t i = 0; tok && i < sizeof cases / sizeof cases[0]; i++) {
        size_t na, nb;
        lc_token *a = encode(t, tok, cases[i].bytes, strlen(cases[i].bytes), false, false, &na);
        lc_token *b = encode(t, tok, cases[i].as_python_reads, strlen(cases[i].as_python_reads),
                             false, false, &nb);
        CHECK(t, a && b && same_ids(a, na, b, nb), "case %zu: ids differ from the replaced text's",
              i);
        free(a);
        free(b);
    }
    lc_tokenizer_free(tok);
}

/* Long runs of one character class stay linear, and every byte comes back. */
void test_bpe_long_runs(test_ctx *t) {
    lc_tokenizer *tok = load_shared_tokenizer(t, TIKTOKEN);
    if (!tok) return;
    static const char *const units[] = {" ", "a", "7", "!", "\n", " \t", "🦙", "ab "};
    const size_t bytes = 200000;
    char *text = malloc(bytes + 8);
    for (size_t u = 0; u < sizeof units / sizeof units[0]; u++) {
        size_t ul = strlen(units[u]), len = 0;
        while (len + ul <= bytes) memcpy(text + len, units[u], ul), len += ul;
        text[len++] = 'x';
        double t0 = lc_time_seconds();
        size_t n, back_len;
        lc_token *ids = encode(t, tok, text, len, false, false, &n);
        double seconds = lc_time_seconds() - t0;
        if (!ids) continue;
        CHECK(t, seconds < 5.0, "a run of '%s': %.2f s for %zu bytes", units[u], seconds, len);
        char *back = join_pieces(tok, ids, n, &back_len);
        CHECK(t, back_len == len && memcmp(back, text, len) == 0, "a run of '%s' lost bytes",
              units[u]);
        free(back);
        free(ids);
    }
    free(text);
    lc_tokenizer_free(tok);
}

void test_bpe_directory(test_ctx *t) {
    lc_tokenizer *dir = load_shared_tokenizer(t, HF_DIR);
    if (!dir) return;
    size_t n;
    lc_token *ids = encode(t, dir, "Hello world", 11, true, false, &n);
    const lc_token want[] = {128000, 9906, 1917};
    CHECK(t, ids && same_ids(ids, n, want, 3), "'Hello world' from the folder");
    free(ids);
    lc_tokenizer_free(dir);
    /* a folder without a tokenizer names what it looked for */
    char path[1024];
    lc_tokenizer *none = NULL;
    lc_error err;
    CHECK(t,
          lc_tokenizer_load(shared_path(path, sizeof path, "golden"), &none, &err) != LC_OK &&
              strstr(err.msg, "tokenizer.json"),
          "a folder without a tokenizer");
    lc_tokenizer_free(none);
}

/* Writes `len` bytes to a scratch file and expects lc_tokenizer_load to fail
 * with a message containing `want`. */
static void expect_load_error(test_ctx *t, const char *name, const char *data, size_t len,
                              const char *want) {
    char path[1024];
    temp_path(path, sizeof path, name);
    FILE *f = fopen(path, "wb");
    fwrite(data, 1, len, f);
    fclose(f);
    lc_tokenizer *tok = NULL;
    lc_error err = {0};
    lc_status st = lc_tokenizer_load(path, &tok, &err);
    CHECK(t, st != LC_OK && strstr(err.msg, want) && strstr(err.msg, name),
          "%s: %s (want an error with '%s')", name, st ? err.msg : "loaded", want);
    lc_tokenizer_free(tok);
    remove(path);
}

/* A small tiktoken file: the 256 bytes, then `extra` lines. */
static char *tiktoken_text(const char *extra, size_t *len) {
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char *s = malloc(256 * 16 + strlen(extra) + 1);
    size_t n = 0;
    for (int b = 0; b < 256; b++)
        n += (size_t)sprintf(s + n, "%c%c== %d\n", b64[b >> 2], b64[(b & 3) << 4], b);
    strcpy(s + n, extra);
    *len = n + strlen(extra);
    return s;
}

/* A tokenizer.json whose vocab is the 256 bytes (id = byte), then `extra`
 * vocab entries (", \"piece\": id" ...), with the given pre_tokenizer,
 * merges and added_tokens (JSON text). malloc'd. */
static char *byte_vocab_json(const char *pre, const char *merges, const char *extra,
                             const char *added) {
    char *doc_text = malloc(1 << 16);
    size_t n = (size_t)sprintf(doc_text,
                               "{\"added_tokens\": %s, \"pre_tokenizer\": %s, \"model\": "
                               "{\"type\": \"BPE\", \"merges\": %s, \"vocab\": {",
                               added, pre, merges);
    char piece[8];
    for (int b = 0; b < 256; b++) {
        size_t k = byte_unicode_encode((const char *)&(char){(char)b}, 1, piece);
        piece[k] = '\0';
        n += (size_t)sprintf(doc_text + n, "%s\"%s%s\": %d", b ? ", " : "",
                             piece[0] == '"' || piece[0] == '\\' ? "\\" : "", piece, b);
    }
    sprintf(doc_text + n, "%s}}}", extra);
    return doc_text;
}

/* A small tokenizer.json of GPT-2's kind: ByteLevel's own regex, merges as
 * "a b" and ["a", "b"], no whole-word shortcut, an added token that is not
 * special (matched in any text) and one that is (only on request). */
void test_bpe_small_json(test_ctx *t) {
    char *doc_text =
        byte_vocab_json("{\"type\": \"ByteLevel\", \"add_prefix_space\": false}",
                        "[\"h i\", [\"\\u0120\", \"hi\"]]", ", \"hi\": 256, \"Ġhi\": 257",
                        "[{\"id\": 258, \"content\": \"<tool>\", \"special\": false}, "
                        "{\"id\": 259, \"content\": \"<|eot|>\", \"special\": true}]");
    char path[1024];
    temp_path(path, sizeof path, "small.json");
    FILE *f = fopen(path, "wb");
    fputs(doc_text, f);
    fclose(f);
    free(doc_text);
    lc_tokenizer *tok = NULL;
    lc_error err;
    CHECK(t, lc_tokenizer_load(path, &tok, &err) == LC_OK, "%s", err.msg);
    remove(path);
    if (!tok) return;
    const char *text = " hi<tool>x<|eot|>";
    const lc_token plain[] = {257, 258, 120, 60, 124, 101, 111, 116, 124, 62};
    const lc_token special[] = {257, 258, 120, 259};
    size_t n;
    lc_token *ids = encode(t, tok, text, strlen(text), false, false, &n);
    CHECK(t, ids && same_ids(ids, n, plain, 10), "plain: %zu ids", n);
    free(ids);
    ids = encode(t, tok, text, strlen(text), false, true, &n);
    CHECK(t, ids && same_ids(ids, n, special, 4), "with specials: %zu ids", n);
    char *back = ids ? detokenize_all(tok, ids, n, NULL) : NULL;
    CHECK(t, back && strcmp(back, " hi<tool>x") == 0, "decoded '%s'", back ? back : "");
    CHECK(t,
          lc_tokenizer_token_id(tok, "<tool>") == 258 && !lc_tokenizer_is_special(tok, 258) &&
              lc_tokenizer_is_special(tok, 259) && lc_tokenizer_bos(tok) < 0 &&
              !lc_tokenizer_add_bos(tok),
          "added tokens, no BOS");
    free(back);
    free(ids);
    CHECK(t,
          lc_tokenizer_encode(tok, "x", 1, true, false, &ids, &n, &err) == LC_ERR_ARG &&
              strstr(err.msg, "BOS"),
          "BOS asked of a vocabulary without one");
    lc_tokenizer_free(tok);
}

void test_bpe_bad_files(test_ctx *t) {
    size_t len;
    char *s = tiktoken_text("aGk= 256\n", &len); /* "hi" */
    char path[1024];
    temp_path(path, sizeof path, "ok.tiktoken");
    FILE *f = fopen(path, "wb");
    fwrite(s, 1, len, f);
    fclose(f);
    lc_tokenizer *tok = NULL;
    lc_error err;
    CHECK(t, lc_tokenizer_load(path, &tok, &err) == LC_OK, "a small tiktoken file: %s", err.msg);
    if (tok) {
        size_t n;
        lc_token *ids = encode(t, tok, "hi<|eot_id|>", 12, true, true, &n);
        CHECK(t, ids && n == 3 && ids[0] == 257 && ids[1] == 256 && ids[2] == 257 + 9,
              "small tiktoken file: ids");
        free(ids);
    }
    lc_tokenizer_free(tok);
    remove(path);
    free(s);
    static const struct {
        const char *name, *extra, *want;
    } tiktoken[] = {
        {"gap.tiktoken", "aGk= 300\n", "gap"},
        {"twice.tiktoken", "aGk= 255\n", "twice"},
        {"base64.tiktoken", "a*k= 256\n", "base64"},
        {"pad.tiktoken", "aGk 256\n", "base64"},
        {"rank.tiktoken", "aGk= 25x\n", "BASE64 RANK"},
        {"fields.tiktoken", "aGk=256\n", "BASE64 RANK"},
        {"empty-line.tiktoken", "\naGk= 256\n", "line 257"},
        {"duplicate.tiktoken", "YQ== 256\n", "same piece"},
    };
    for (size_t i = 0; i < sizeof tiktoken / sizeof tiktoken[0]; i++) {
        s = tiktoken_text(tiktoken[i].extra, &len);
        expect_load_error(t, tiktoken[i].name, s, len, tiktoken[i].want);
        free(s);
    }
    expect_load_error(t, "few.tiktoken", "IQ== 0\nIg== 1\n", 14, "at least 256");
    static const struct {
        const char *name, *json, *want;
    } hf[] = {
        {"not.json", "{\"model\": ", "not valid JSON"},
        {"array.json", "{\"model\": []}", "model type"},
        {"wordpiece.json", "{\"model\": {\"type\": \"WordPiece\", \"vocab\": {}}}", "WordPiece"},
        {"no-bytelevel.json", "{\"model\": {\"type\": \"BPE\", \"vocab\": {}, \"merges\": []}}",
         "ByteLevel"},
        {"fallback.json",
         "{\"model\": {\"type\": \"BPE\", \"byte_fallback\": true, \"vocab\": {}}}",
         "byte_fallback"},
        {"normalizer.json",
         "{\"normalizer\": {\"type\": \"NFC\"}, \"model\": {\"type\": \"BPE\", \"vocab\": {}}}",
         "NFC"},
        {"bytes.json",
         "{\"pre_tokenizer\": {\"type\": \"ByteLevel\", \"add_prefix_space\": false}, \"model\": "
         "{\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": []}}",
         "byte 0x00"},
        {"id.json",
         "{\"pre_tokenizer\": {\"type\": \"ByteLevel\", \"add_prefix_space\": false}, \"model\": "
         "{\"type\": \"BPE\", \"vocab\": {\"a\": 1.5}}}",
         "integer"},
        {"hole.json",
         "{\"pre_tokenizer\": {\"type\": \"ByteLevel\", \"add_prefix_space\": false}, \"model\": "
         "{\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 2}}}",
         "no token has id 1"},
        {"twice.json",
         "{\"pre_tokenizer\": {\"type\": \"ByteLevel\", \"add_prefix_space\": false}, \"model\": "
         "{\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 0}}}",
         "id 0 is given to both"},
        {"alphabet.json",
         "{\"pre_tokenizer\": {\"type\": \"ByteLevel\", \"add_prefix_space\": false}, \"model\": "
         "{\"type\": \"BPE\", \"vocab\": {\" \": 0}}}",
         "byte-level alphabet"},
        {"prefix.json",
         "{\"pre_tokenizer\": {\"type\": \"ByteLevel\"}, \"model\": {\"type\": \"BPE\", \"vocab\": "
         "{}}}",
         "add_prefix_space"},
    };
    for (size_t i = 0; i < sizeof hf / sizeof hf[0]; i++)
        expect_load_error(t, hf[i].name, hf[i].json, strlen(hf[i].json), hf[i].want);
    /* a regex PCRE2 cannot compile, on an otherwise complete vocabulary */
    const char *split = "{\"type\": \"Sequence\", \"pretokenizers\": [{\"type\": \"Split\", "
                        "\"pattern\": {\"Regex\": \"(a\"}, \"behavior\": \"Isolated\"}, "
                        "{\"type\": \"ByteLevel\", \"add_prefix_space\": false, \"use_regex\": "
                        "false}]}";
    char *doc_text = byte_vocab_json(split, "[[\"a\", \"b\"]]", "", "[]");
    expect_load_error(t, "badregex.json", doc_text, strlen(doc_text), "regex");
    /* ... and a merge whose result is not a piece */
    memcpy(strstr(doc_text, "(a"), ".+", 2);
    expect_load_error(t, "merge.json", doc_text, strlen(doc_text), "merge 0");
    free(doc_text);
    /* a SentencePiece protobuf is named as such */
    char p2[1024];
    size_t sp_len;
    char *sp = read_file(shared_path(p2, sizeof p2, "models/llama2-tokenizer.model"), &sp_len);
    if (sp) expect_load_error(t, "sp.model", sp, sp_len > 4096 ? 4096 : sp_len, "SentencePiece");
    free(sp);
}
