/* Hugging Face tokenizer.json (the `tokenizers` library's format), parsed
 * with cJSON. Read: model.type "BPE" with vocab {piece: id} and merges (pairs
 * as ["a", "b"] or "a b"), pieces written in GPT-2's byte-to-unicode
 * alphabet; a ByteLevel pre-tokenizer, after a Split regex (Llama 3) or with
 * its own GPT-2 regex; added_tokens. tokenizer_config.json beside it adds
 * added_tokens_decoder (this project's Llama 3 copy lists its special tokens
 * only there), bos_token, eos_token and add_bos_token. Anything that would
 * change the ids and is not implemented (normalizers, byte fallback, other
 * pre-tokenizers) is refused by name rather than ignored. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "tokenizer/tokenizer.h"

#define MAX_VOCAB (1 << 22)

typedef struct entry {
    const char *text; /* vocab: the key in the unicode alphabet; added: the content */
    uint8_t from;     /* 0 unset, 1 vocab, 2 added */
    uint8_t kind;
} entry;

typedef struct hf {
    lc_tokenizer *t;
    const cJSON *root, *config; /* config may be NULL */
    entry *entries;             /* (cap) by id */
    int32_t n, cap;             /* n: highest id + 1 */
    char *pattern;              /* the pre-tokenizer regex */
    bool config_error;          /* the error is in tokenizer_config.json */
} hf;

static const cJSON *get(const cJSON *obj, const char *key) {
    return cJSON_IsObject(obj) ? cJSON_GetObjectItemCaseSensitive(obj, key) : NULL;
}

static const char *get_string(const cJSON *obj, const char *key) {
    const cJSON *v = get(obj, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* A boolean field; `fallback` when absent or null. */
static bool get_bool(const cJSON *obj, const char *key, bool fallback) {
    const cJSON *v = get(obj, key);
    return cJSON_IsBool(v) ? cJSON_IsTrue(v) : fallback;
}

static bool is_null(const cJSON *v) { return !v || cJSON_IsNull(v); }

static lc_status parse_json(const uint8_t *data, uint64_t size, const char *what, cJSON **out,
                            lc_error *err) {
    const char *end = NULL;
    *out = cJSON_ParseWithLengthOpts((const char *)data, (size_t)size, &end, false);
    if (!*out)
        return lc_fail(err, LC_ERR_FORMAT, "%s is not valid JSON (error near byte %td)", what,
                       end ? end - (const char *)data : (ptrdiff_t)0);
    if (!cJSON_IsObject(*out)) return lc_fail(err, LC_ERR_FORMAT, "%s is not a JSON object", what);
    return LC_OK;
}

static lc_status put(hf *h, int64_t id, const char *text, uint8_t from, uint8_t kind,
                     lc_error *err) {
    if (id < 0 || id >= MAX_VOCAB)
        return lc_fail(err, LC_ERR_FORMAT, "token id %lld is out of range [0, %d)", (long long)id,
                       MAX_VOCAB);
    if (id >= h->cap) {
        int32_t cap = h->cap ? h->cap : 1024;
        while (cap <= id) cap *= 2;
        entry *bigger = realloc(h->entries, (size_t)cap * sizeof *bigger);
        if (!bigger) return lc_fail(err, LC_ERR_NOMEM, "out of memory for %d tokens", cap);
        memset(bigger + h->cap, 0, (size_t)(cap - h->cap) * sizeof *bigger);
        h->entries = bigger;
        h->cap = cap;
    }
    entry *e = &h->entries[id];
    if (e->from == from && strcmp(e->text, text) != 0)
        return lc_fail(err, LC_ERR_FORMAT, "id %lld is given to both '%.64s' and '%.64s'",
                       (long long)id, e->text, text);
    if (e->from > from) return LC_OK; /* an added token outranks the vocab entry of its id */
    *e = (entry){text, from, kind};
    if (id >= h->n) h->n = (int32_t)id + 1;
    return LC_OK;
}

static lc_status read_id(const cJSON *v, const char *what, int64_t *id, lc_error *err) {
    if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble))
        return lc_fail(err, LC_ERR_FORMAT, "'%.64s': the id is not an integer", what);
    if (v->valuedouble < 0 || v->valuedouble >= MAX_VOCAB)
        return lc_fail(err, LC_ERR_FORMAT, "'%.64s': id %.0f is out of range [0, %d)", what,
                       v->valuedouble, MAX_VOCAB);
    *id = (int64_t)v->valuedouble;
    return LC_OK;
}

static lc_status read_vocab(hf *h, lc_error *err) {
    const cJSON *model = get(h->root, "model"), *vocab = get(model, "vocab");
    if (!cJSON_IsObject(vocab)) return lc_fail(err, LC_ERR_FORMAT, "model.vocab is not an object");
    const cJSON *v;
    lc_status st;
    cJSON_ArrayForEach(v, vocab) {
        int64_t id = -1;
        if ((st = read_id(v, v->string, &id, err)) ||
            (st = put(h, id, v->string, 1, TOKEN_NORMAL, err)))
            return st;
    }
    /* added tokens: tokenizer.json's list, then tokenizer_config.json's map */
    const cJSON *added = get(h->root, "added_tokens");
    if (!cJSON_IsArray(added)) added = NULL;
    cJSON_ArrayForEach(v, added) {
        const char *content = get_string(v, "content");
        int64_t id = -1;
        if (!content) return lc_fail(err, LC_ERR_FORMAT, "added_tokens: an entry has no content");
        if ((st = read_id(get(v, "id"), content, &id, err)) ||
            (st = put(h, id, content, 2, get_bool(v, "special", false) ? TOKEN_CONTROL : TOKEN_USER,
                      err)))
            return st;
    }
    const cJSON *decoder = get(h->config, "added_tokens_decoder");
    if (!cJSON_IsObject(decoder)) decoder = NULL;
    h->config_error = true;
    cJSON_ArrayForEach(v, decoder) {
        const char *content = get_string(v, "content");
        char *end;
        long long id = strtoll(v->string, &end, 10);
        if (!content || *end || end == v->string)
            return lc_fail(err, LC_ERR_FORMAT, "added_tokens_decoder: entry '%.32s' is malformed",
                           v->string);
        if ((st = put(h, id, content, 2, get_bool(v, "special", false) ? TOKEN_CONTROL : TOKEN_USER,
                      err)))
            return st;
    }
    h->config_error = false;
    for (int32_t id = 0; id < h->n; id++)
        if (!h->entries[id].from)
            return lc_fail(err, LC_ERR_FORMAT, "no token has id %d (the ids reach %d)", id,
                           h->n - 1);
    return LC_OK;
}

/* Copies the pieces into the tokenizer: vocab entries back to raw bytes. */
static lc_status fill_pieces(hf *h, lc_error *err) {
    uint64_t bytes = 0;
    for (int32_t id = 0; id < h->n; id++) bytes += strlen(h->entries[id].text) + 1;
    lc_status st = tokenizer_alloc(h->t, h->n, bytes, err);
    if (st) return st;
    uint32_t at = 0;
    for (int32_t id = 0; id < h->n; id++) {
        const entry *e = &h->entries[id];
        size_t len = strlen(e->text);
        int64_t got = (int64_t)len;
        if (e->from == 1)
            got = byte_unicode_decode(e->text, len, h->t->arena + at);
        else
            memcpy(h->t->arena + at, e->text, len);
        if (got < 0)
            return lc_fail(err, LC_ERR_FORMAT,
                           "token %d ('%.64s') is not written in the byte-level alphabet", id,
                           e->text);
        if (got > LC_MAX_PIECE_BYTES)
            return lc_fail(err, LC_ERR_FORMAT, "token %d is %lld bytes long (at most %d)", id,
                           (long long)got, LC_MAX_PIECE_BYTES);
        h->t->arena[at + (uint32_t)got] = '\0';
        h->t->offset[id] = at;
        h->t->length[id] = (uint32_t)got;
        h->t->kind[id] = e->kind;
        at += (uint32_t)got + 1;
    }
    return LC_OK;
}

/* A literal Split pattern ({"String": ...}) as a regex. */
static char *quote_literal(const char *s) {
    char *out = malloc(2 * strlen(s) + 1), *o = out;
    if (!out) return NULL;
    for (; *s; s++) {
        if (strchr("\\^$.|?*+()[]{}-#", *s)) *o++ = '\\';
        *o++ = *s;
    }
    *o = '\0';
    return out;
}

static lc_status read_pre_tokenizer(hf *h, const cJSON *pre, bool *byte_level, lc_error *err) {
    const char *type = get_string(pre, "type");
    if (!type) return lc_fail(err, LC_ERR_FORMAT, "a pre_tokenizer has no type");
    if (strcmp(type, "Sequence") == 0) {
        const cJSON *v;
        cJSON_ArrayForEach(v, get(pre, "pretokenizers")) {
            lc_status st = read_pre_tokenizer(h, v, byte_level, err);
            if (st) return st;
        }
        return LC_OK;
    }
    const char *regex = NULL;
    if (strcmp(type, "Split") == 0) {
        const char *behavior = get_string(pre, "behavior");
        if (!behavior || strcmp(behavior, "Isolated") != 0 || get_bool(pre, "invert", false))
            return lc_fail(err, LC_ERR_UNSUPPORTED,
                           "pre_tokenizer Split with behavior %s%s is not supported (Isolated is)",
                           behavior ? behavior : "(none)",
                           get_bool(pre, "invert", false) ? " inverted" : "");
        if (*byte_level) /* the regex would then see GPT-2's alphabet, not the text */
            return lc_fail(err, LC_ERR_UNSUPPORTED,
                           "pre_tokenizer Split after ByteLevel is not supported");
        const cJSON *pattern = get(pre, "pattern");
        regex = get_string(pattern, "Regex");
        const char *literal = get_string(pattern, "String");
        if (!regex && !literal)
            return lc_fail(err, LC_ERR_FORMAT, "pre_tokenizer Split has no pattern");
        if (h->pattern)
            return lc_fail(err, LC_ERR_UNSUPPORTED, "more than one pre-tokenizer regex");
        h->pattern = regex ? strdup(regex) : quote_literal(literal);
    } else if (strcmp(type, "ByteLevel") == 0) {
        *byte_level = true;
        if (get_bool(pre, "add_prefix_space", true))
            return lc_fail(err, LC_ERR_UNSUPPORTED,
                           "pre_tokenizer ByteLevel with add_prefix_space is not supported");
        if (get_bool(pre, "use_regex", true)) {
            if (h->pattern)
                return lc_fail(err, LC_ERR_UNSUPPORTED, "more than one pre-tokenizer regex");
            h->pattern = strdup(TOKENIZER_PATTERN_GPT2);
        }
    } else {
        return lc_fail(err, LC_ERR_UNSUPPORTED, "pre_tokenizer %s is not supported", type);
    }
    if (!h->pattern) return lc_fail(err, LC_ERR_NOMEM, "out of memory");
    return LC_OK;
}

static lc_status check_model(const hf *h, lc_error *err) {
    const cJSON *model = get(h->root, "model");
    const char *type = get_string(model, "type");
    if (!model) return lc_fail(err, LC_ERR_FORMAT, "no \"model\" object: not a tokenizer.json?");
    if (!type || strcmp(type, "BPE") != 0)
        return lc_fail(err, LC_ERR_UNSUPPORTED, "model type %s is not supported (BPE is)",
                       type ? type : "(none)");
    if (get_bool(model, "byte_fallback", false))
        return lc_fail(
            err, LC_ERR_UNSUPPORTED,
            "a SentencePiece-style BPE (byte_fallback); load the model's tokenizer.model "
            "as tokenizer.bin or from a GGUF instead");
    if (!is_null(get(model, "continuing_subword_prefix")) ||
        !is_null(get(model, "end_of_word_suffix")) || !is_null(get(model, "dropout")))
        return lc_fail(err, LC_ERR_UNSUPPORTED,
                       "BPE with a subword prefix, word suffix or dropout is not supported");
    if (!is_null(get(h->root, "normalizer")))
        return lc_fail(err, LC_ERR_UNSUPPORTED, "normalizer %s is not supported",
                       get_string(get(h->root, "normalizer"), "type")
                           ? get_string(get(h->root, "normalizer"), "type")
                           : "(unknown)");
    return LC_OK;
}

/* Splits a merge into its two sides: ["a", "b"] or "a b". */
static bool merge_sides(const cJSON *m, const char **a, size_t *la, const char **b, size_t *lb) {
    if (cJSON_IsArray(m)) {
        const cJSON *x = m->child, *y = x ? x->next : NULL;
        if (!cJSON_IsString(x) || !cJSON_IsString(y) || y->next) return false;
        *a = x->valuestring, *la = strlen(x->valuestring);
        *b = y->valuestring, *lb = strlen(y->valuestring);
        return true;
    }
    if (!cJSON_IsString(m)) return false;
    const char *s = m->valuestring, *space = strchr(s, ' ');
    if (!space || strchr(space + 1, ' ')) return false;
    *a = s, *la = (size_t)(space - s);
    *b = space + 1, *lb = strlen(space + 1);
    return true;
}

static lc_status read_merges(hf *h, lc_error *err) {
    const cJSON *merges = get(get(h->root, "model"), "merges");
    if (!is_null(merges) && !cJSON_IsArray(merges))
        return lc_fail(err, LC_ERR_FORMAT, "model.merges is not a list");
    int n = cJSON_IsArray(merges) ? cJSON_GetArraySize(merges) : 0;
    lc_status st = bpe_pairs_init(&h->t->pairs, (uint32_t)n, err);
    if (st) return st;
    /* both sides decoded back to back; decoding never lengthens a string */
    char *buf = malloc(4 * (size_t)LC_MAX_PIECE_BYTES);
    if (!buf) return lc_fail(err, LC_ERR_NOMEM, "out of memory");
    int32_t rank = 0;
    const cJSON *m;
    if (!n) merges = NULL;
    cJSON_ArrayForEach(m, merges) {
        const char *a, *b;
        size_t la, lb;
        int64_t ra = -1, rb = -1;
        if (!merge_sides(m, &a, &la, &b, &lb)) {
            st = lc_fail(err, LC_ERR_FORMAT, "merge %d is not a pair", rank);
            break;
        }
        if (la <= 2 * LC_MAX_PIECE_BYTES && lb <= 2 * LC_MAX_PIECE_BYTES)
            ra = byte_unicode_decode(a, la, buf),
            rb = ra < 0 ? -1 : byte_unicode_decode(b, lb, buf + ra);
        lc_token left = ra > 0 ? tokenizer_lookup(h->t, buf, (size_t)ra) : -1;
        lc_token right = rb > 0 ? tokenizer_lookup(h->t, buf + ra, (size_t)rb) : -1;
        lc_token result =
            left >= 0 && right >= 0 ? tokenizer_lookup(h->t, buf, (size_t)(ra + rb)) : -1;
        if (result < 0) {
            st =
                lc_fail(err, LC_ERR_FORMAT, "merge %d ('%.*s' '%.*s'): %s is not in the vocabulary",
                        rank, (int)(la > 64 ? 64 : la), a, (int)(lb > 64 ? 64 : lb), b,
                        left < 0    ? "the left side"
                        : right < 0 ? "the right side"
                                    : "the merged piece");
            break;
        }
        /* a pair listed twice takes its later rank, as tokenizers' merge map does */
        if ((st = bpe_pairs_add(&h->t->pairs, left, right, rank, result, false, err))) break;
        rank++;
    }
    free(buf);
    return st;
}

/* bos_token / eos_token: a string, or an AddedToken object with "content". */
static lc_status config_token(hf *h, const char *key, lc_token *id, lc_error *err) {
    const cJSON *v = get(h->config, key);
    const char *text = cJSON_IsString(v) ? v->valuestring : get_string(v, "content");
    if (!text) return LC_OK;
    if ((*id = lc_tokenizer_token_id(h->t, text)) < 0) {
        h->config_error = true;
        return lc_fail(err, LC_ERR_FORMAT, "%s '%.64s' is not in the vocabulary", key, text);
    }
    return LC_OK;
}

static lc_status parse(hf *h, lc_error *err) {
    lc_tokenizer *t = h->t;
    lc_status st;
    bool byte_level = false;
    if ((st = check_model(h, err))) return st;
    const cJSON *pre = get(h->root, "pre_tokenizer");
    if (!is_null(pre) && (st = read_pre_tokenizer(h, pre, &byte_level, err))) return st;
    if (!byte_level)
        return lc_fail(
            err, LC_ERR_UNSUPPORTED,
            "no ByteLevel pre-tokenizer: only byte-level BPE tokenizer.json is supported");
    if ((st = read_vocab(h, err)) || (st = fill_pieces(h, err))) return st;
    t->type = TOKENIZER_BYTE_BPE;
    t->unk = t->bos = t->eos = -1;
    t->ignore_merges = get_bool(get(h->root, "model"), "ignore_merges", false);
    if ((st = tokenizer_build_index(t, true, err)) || (st = read_merges(h, err))) return st;
    /* BOS and EOS: tokenizer_config.json names them; else the usual names. */
    t->bos = lc_tokenizer_token_id(t, "<|begin_of_text|>");
    t->eos = lc_tokenizer_token_id(t, "<|end_of_text|>");
    if (t->eos < 0) t->eos = lc_tokenizer_token_id(t, "<|endoftext|>");
    if ((st = config_token(h, "bos_token", &t->bos, err)) ||
        (st = config_token(h, "eos_token", &t->eos, err)))
        return st;
    t->add_bos = get_bool(h->config, "add_bos_token", t->bos >= 0);
    if ((st = tokenizer_index_specials(t, err))) return st; /* the stop list names EOS first */
    return pretokenizer_create(h->pattern, strlen(h->pattern), &t->pre, err);
}

lc_status tokenizer_parse_hf(lc_tokenizer *t, const uint8_t *json, uint64_t size,
                             const uint8_t *config, uint64_t config_size, const char *name,
                             lc_error *err) {
    hf h = {t, NULL, NULL, NULL, 0, 0, NULL, false};
    cJSON *root = NULL, *cfg = NULL;
    lc_status st = parse_json(json, size, "the file", &root, err);
    if (!st && config) {
        st = parse_json(config, config_size, "tokenizer_config.json", &cfg, err);
        if (st) lc_fail_prefix(err, "beside it");
    }
    h.root = root;
    h.config = cfg;
    if (!st) st = parse(&h, err);
    if (st && h.config_error) lc_fail_prefix(err, "tokenizer_config.json");
    if (st) lc_fail_prefix(err, name);
    cJSON_Delete(root);
    cJSON_Delete(cfg);
    free(h.entries);
    free(h.pattern);
    return st;
}
