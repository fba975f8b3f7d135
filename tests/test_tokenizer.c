/* The tokenizer against SentencePiece's own ids (llama.cpp's 46-case SPM
 * test), plus round trips, BOS/EOS, the empty text, invalid UTF-8, streaming
 * decode of byte tokens, and a 10,000-word prompt. */
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "llamac.h"
#include "tokenizer/tokenizer.h"

static char *decode_all(const lc_tokenizer *tok, const lc_token *ids, size_t n) {
    char *out = malloc(n * LC_DETOKENIZE_BUF + 1);
    size_t len = 0;
    lc_detokenizer dt;
    lc_detokenizer_init(&dt);
    for (size_t i = 0; i < n; i++)
        len += lc_detokenize(tok, &dt, ids[i], out + len, LC_DETOKENIZE_BUF);
    out[len] = '\0';
    return out;
}

/* llama.cpp's 46 SentencePiece cases through the vocabulary in `vocab_rel`. */
static void run_spm_cases(test_ctx *t, const char *vocab_rel) {
    lc_tokenizer *tok = load_shared_tokenizer(t, vocab_rel);
    char p1[1024], p2[1024];
    char *inp = read_file(
        shared_path(p1, sizeof p1, "tokenizer_tests/ggml-vocab-llama-spm.gguf.inp"), NULL);
    char *out = read_file(
        shared_path(p2, sizeof p2, "tokenizer_tests/ggml-vocab-llama-spm.gguf.out"), NULL);
    CHECK(t, tok && inp && out, "missing tokenizer or test files");
    if (!tok || !inp || !out) goto done;
    const char *sep = "\n__ggml_vocab_test__\n";
    char *text = inp, *expect = out;
    int cases = 0;
    for (char *end; (end = strstr(text, sep)); text = end + strlen(sep)) {
        *end = '\0';
        char *eol = strchr(expect, '\n');
        CHECK(t, eol != NULL, "fewer expected lines than texts");
        if (!eol) break;
        *eol = '\0';
        lc_token *ids;
        size_t n;
        lc_error err;
        if (lc_tokenizer_encode(tok, text, strlen(text), false, false, &ids, &n, &err)) {
            CHECK(t, false, "case %d: %s", cases, err.msg);
        } else {
            char got[16384] = "";
            size_t used = 0;
            for (size_t i = 0; i < n && used < sizeof got - 16; i++)
                used += (size_t)snprintf(got + used, sizeof got - used, " %d", ids[i]);
            CHECK(t, strcmp(got, expect) == 0, "case %d (\"%.40s\"):\n got %s\nwant %s", cases,
                  text, got, expect);
            free(ids);
        }
        expect = eol + 1;
        cases++;
    }
    CHECK(t, cases == 46, "ran %d cases, expected 46", cases);
done:
    free(inp);
    free(out);
    lc_tokenizer_free(tok);
}

void test_tokenizer_spm_cases(test_ctx *t) { run_spm_cases(t, "models/tokenizer.bin"); }

/* The same cases from the vocabulary in llama.cpp's GGUF test file. */
void test_tokenizer_gguf_vocab(test_ctx *t) {
    run_spm_cases(t, "tokenizer_tests/ggml-vocab-llama-spm.gguf");
    /* ... which holds the same pieces, scores and specials as tokenizer.bin. */
    lc_tokenizer *a = load_shared_tokenizer(t, "models/tokenizer.bin");
    lc_tokenizer *b = load_shared_tokenizer(t, "tokenizer_tests/ggml-vocab-llama-spm.gguf");
    if (a && b) {
        CHECK(t,
              a->n_vocab == b->n_vocab && a->bos == b->bos && a->eos == b->eos &&
                  a->unk == b->unk && b->add_bos,
              "vocabulary sizes or special ids differ");
        int differ = 0;
        for (lc_token id = 0; id < a->n_vocab && id < b->n_vocab; id++) {
            size_t la, lb;
            const char *pa = lc_tokenizer_piece(a, id, &la), *pb = lc_tokenizer_piece(b, id, &lb);
            /* llama2.c's export spells BOS and EOS "\n<s>\n" and "\n</s>\n"; they
             * are control tokens, never matched against text. */
            bool control = a->kind[id] == TOKEN_CONTROL;
            if ((!control && (la != lb || memcmp(pa, pb, la))) || a->score[id] != b->score[id] ||
                a->kind[id] != b->kind[id])
                differ++;
        }
        CHECK(t, differ == 0, "%d tokens differ between tokenizer.bin and the GGUF", differ);
    }
    lc_tokenizer_free(a);
    lc_tokenizer_free(b);
}

void test_tokenizer_known_ids(test_ctx *t) {
    lc_tokenizer *tok = load_shared_tokenizer(t, "models/tokenizer.bin");
    if (!tok) return;
    /* Llama 2's ids for this sentence, from Meta's SentencePiece model. */
    const lc_token want[] = {1, 306, 4658, 278, 6593, 310, 2834, 338};
    const char *text = "I believe the meaning of life is";
    lc_token *ids;
    size_t n;
    lc_error err;
    CHECK(t, lc_tokenizer_encode(tok, text, strlen(text), true, false, &ids, &n, &err) == LC_OK,
          "%s", err.msg);
    CHECK(t, n == 8 && memcmp(ids, want, sizeof want) == 0, "ids differ (%zu tokens)", n);
    free(ids);
    CHECK(t,
          lc_tokenizer_encode(tok, "", 0, true, true, &ids, &n, &err) == LC_OK && n == 2 &&
              ids[0] == 1 && ids[1] == 2,
          "empty text with BOS and EOS");
    free(ids);
    CHECK(t, lc_tokenizer_encode(tok, "", 0, false, false, &ids, &n, &err) == LC_OK && n == 0,
          "empty text without BOS must give no ids");
    free(ids);
    lc_tokenizer_free(tok);
}

void test_tokenizer_round_trip(test_ctx *t) {
    static const char *const texts[] = {
        "Once upon a time, there was a little girl named Lily.",
        "  two leading spaces and\ttabs\nand newlines\n\n",
        "Unicode: naïve café, Ελληνικά, русский, 日本語, emoji 🦙🚀 and "
        "▁ "
        "the "
        "escaped "
        "space",
        "control bytes are fine in prompts? no: only text",
        "x",
    };
    static const char *const vocabs[] = {"models/tokenizer.bin", "models/tok512.bin"};
    for (size_t v = 0; v < 2; v++) {
        lc_tokenizer *tok = load_shared_tokenizer(t, vocabs[v]);
        if (!tok) continue;
        for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
            lc_token *ids;
            size_t n;
            lc_error err;
            if (lc_tokenizer_encode(tok, texts[i], strlen(texts[i]), true, false, &ids, &n, &err)) {
                CHECK(t, false, "%s", err.msg);
                continue;
            }
            char *back = decode_all(tok, ids, n);
            /* Decoding reads U+2581 back as a space, as SentencePiece does. */
            char want[512];
            snprintf(want, sizeof want, "%s", texts[i]);
            char *esc = strstr(want, "\xe2\x96\x81");
            if (esc) memmove(esc + 1, esc + 3, strlen(esc + 3) + 1), *esc = ' ';
            CHECK(t, strcmp(back, want) == 0, "%s: round trip of \"%s\" gave \"%s\"", vocabs[v],
                  texts[i], back);
            free(back);
            free(ids);
        }
        lc_tokenizer_free(tok);
    }
}

void test_tokenizer_invalid_utf8(test_ctx *t) {
    lc_tokenizer *tok = load_shared_tokenizer(t, "models/tokenizer.bin");
    if (!tok) return;
    static const char *const bad[] = {"abc\xff", "\xc3", "\xed\xa0\x80", "\xf4\x90\x80\x80",
                                      "\xc0\xaf"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        lc_token *ids = NULL;
        size_t n;
        lc_error err;
        lc_status st =
            lc_tokenizer_encode(tok, bad[i], strlen(bad[i]), true, false, &ids, &n, &err);
        CHECK(t, st == LC_ERR_ARG && strstr(err.msg, "UTF-8"), "invalid UTF-8 case %zu accepted",
              i);
        free(ids);
    }
    lc_tokenizer_free(tok);
}

void test_tokenizer_decode_bytes(test_ctx *t) {
    lc_tokenizer *tok = load_shared_tokenizer(t, "models/tokenizer.bin");
    if (!tok) return;
    /* 🦙 (F0 9F A6 99) has no piece: it arrives as four byte tokens (3 + byte). */
    const lc_token llama[] = {1, 3 + 0xF0, 3 + 0x9F, 3 + 0xA6, 3 + 0x99};
    char *s = decode_all(tok, llama, 5);
    CHECK(t, strcmp(s, "\xf0\x9f\xa6\x99") == 0, "byte tokens did not assemble into one character");
    free(s);
    /* Control bytes (ESC, BEL) never reach the terminal; tab and newline do. */
    const lc_token ctrl[] = {3 + 0x1B, 3 + 0x07, 3 + '\t', 3 + '\n'};
    s = decode_all(tok, ctrl, 4);
    CHECK(t, strcmp(s, "\t\n") == 0, "control bytes leaked: %zu bytes", strlen(s));
    free(s);
    /* A broken sequence is dropped, and the byte after it still counts. */
    const lc_token broken[] = {3 + 0xE2, 3 + 'A'};
    s = decode_all(tok, broken, 2);
    CHECK(t, strcmp(s, "A") == 0, "broken UTF-8 handled wrongly: '%s'", s);
    free(s);
    /* The space of the first piece after BOS goes, later ones stay. */
    const lc_token words[] = {1, 450, 6989, 450};
    s = decode_all(tok, words, 4);
    CHECK(t, strcmp(s, "The king The") == 0, "got '%s'", s);
    free(s);
    lc_tokenizer_free(tok);
}

/* A guard against quadratic merging, not a benchmark: a 10,000-word prompt
 * takes ~10 ms; a quadratic rescan takes seconds. Also checks the result is
 * the per-word encoding repeated. */
void test_tokenizer_long_prompt(test_ctx *t) {
    lc_tokenizer *tok = load_shared_tokenizer(t, "models/tokenizer.bin");
    if (!tok) return;
    const char *word = " Sherlock";
    const size_t n_words = 10000, wlen = strlen(word);
    char *text = malloc(n_words * wlen + 1);
    for (size_t i = 0; i < n_words; i++) memcpy(text + i * wlen, word, wlen);
    text[n_words * wlen] = '\0';
    lc_token *one, *all;
    size_t n_one, n_all;
    lc_error err;
    /* With the dummy prefix, "Sherlock Sherlock ..." is " Sherlock" repeated, and
     * no Llama 2 piece spans a word boundary: the ids must repeat one word's. */
    CHECK(t, lc_tokenizer_encode(tok, "Sherlock", 8, false, false, &one, &n_one, &err) == LC_OK,
          "encode");
    double t0 = lc_time_seconds();
    CHECK(t,
          lc_tokenizer_encode(tok, text + 1, strlen(text + 1), false, false, &all, &n_all, &err) ==
              LC_OK,
          "encode long");
    double seconds = lc_time_seconds() - t0;
    CHECK(t, n_all == n_words * n_one, "10,000 words gave %zu tokens, want %zu", n_all,
          n_words * n_one);
    for (size_t i = 0; i < n_all && i < n_words * n_one; i++)
        if (all[i] != one[i % n_one]) {
            CHECK(t, false, "token %zu differs from the single-word encoding", i);
            break;
        }
    CHECK(t, seconds < 2.0, "10,000 words took %.2f s: merging is not O(n log n)", seconds);
    free(one);
    free(all);
    free(text);
    lc_tokenizer_free(tok);
}

void test_tokenizer_bad_files(test_ctx *t) {
    char path[1024], src[1024];
    size_t len;
    char *good = read_file(shared_path(src, sizeof src, "models/tok512.bin"), &len);
    CHECK(t, good != NULL, "cannot read tok512.bin");
    if (!good) return;
    struct {
        size_t keep;
        const char *what;
    } cuts[] = {{0, "empty"}, {2, "header"}, {len - 3, "last token"}, {4 + 6, "record"}};
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        temp_path(path, sizeof path, "tok.bin");
        FILE *f = fopen(path, "wb");
        fwrite(good, 1, cuts[i].keep, f);
        fclose(f);
        lc_tokenizer *tok = NULL;
        lc_error err;
        CHECK(t, lc_tokenizer_load(path, &tok, &err) != LC_OK && strstr(err.msg, path),
              "truncated tokenizer (%s) accepted or unnamed", cuts[i].what);
        lc_tokenizer_free(tok);
    }
    /* A model file is not a tokenizer. */
    lc_tokenizer *tok = NULL;
    lc_error err;
    CHECK(t,
          lc_tokenizer_load(shared_path(src, sizeof src, "models/stories260K.bin"), &tok, &err) !=
              LC_OK,
          "a model file loaded as a tokenizer");
    lc_tokenizer_free(tok);
    remove(path);
    free(good);
}
