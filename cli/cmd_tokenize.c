/* llamac tokenize: text to token ids. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "common.h"

/* Bytes of the UTF-8 character at s[0..n), or 0 when it is not a whole one
 * (a byte-level BPE piece may hold part of a character). Display only. */
static size_t char_bytes(const unsigned char *s, size_t n) {
    size_t need = s[0] < 0x80                    ? 1
                  : s[0] >= 0xC2 && s[0] <= 0xDF ? 2
                  : s[0] >= 0xE0 && s[0] <= 0xEF ? 3
                  : s[0] >= 0xF0 && s[0] <= 0xF4 ? 4
                                                 : 0;
    if (need == 0 || need > n) return 0;
    for (size_t i = 1; i < need; i++)
        if ((s[i] & 0xC0) != 0x80) return 0;
    return need;
}

/* Shows a piece with its bytes visible: spaces stay, control bytes and bytes
 * of partial characters become \xNN. */
static void print_piece(const char *s, size_t len) {
    for (size_t i = 0; i < len;) {
        unsigned char c = (unsigned char)s[i];
        size_t n = char_bytes((const unsigned char *)s + i, len - i);
        if (c == '\\')
            fputs("\\\\", stdout);
        else if (n == 0 || c < 0x20 || c == 0x7F)
            printf("\\x%02x", c);
        else
            fwrite(s + i, 1, n, stdout);
        i += n ? n : 1;
    }
}

int cmd_tokenize(int argc, char **argv) {
    static const command_info info = {
        "tokenize",
        "Print the token ids of a text on one line (with BOS first, as a prompt "
        "gets them).",
        "(-z TOKENIZER | -m MODEL) [--pieces] [--no-bos] [--eos] [--special] (TEXT... | -f FILE)",
        NULL};
    common_opts co;
    common_defaults(&co);
    const char *file = NULL;
    bool no_bos = false, eos = false, pieces = false, count = false, special = false,
         timed = false;
    arg_spec specs[MAX_SPECS];
    int n = 0;
    specs[n++] =
        (arg_spec){"tokenizer",
                   'z',
                   ARG_STRING,
                   &co.tokenizer,
                   "FILE",
                   "tokenizer.bin, tokenizer.model (Llama 3), tokenizer.json, a GGUF\n"
                   "                               vocabulary or a model folder (default: "
                   "the model's, else\n"
                   "                               tokenizer.bin on the model search path)"};
    specs[n++] = (arg_spec){"model",
                            'm',
                            ARG_STRING,
                            &co.model,
                            "PATH",
                            "use the tokenizer of this model: a GGUF file, a Hugging Face\n"
                            "                               folder, or tokenizer.bin beside it"};
    specs[n++] = (arg_spec){"file", 'f',    ARG_STRING,
                            &file,  "FILE", "read the text from a file (- for stdin)"};
    specs[n++] = (arg_spec){"no-bos", 0, ARG_FLAG, &no_bos, NULL, "do not prepend BOS"};
    specs[n++] = (arg_spec){"eos", 0, ARG_FLAG, &eos, NULL, "append EOS"};
    specs[n++] =
        (arg_spec){"special", 0,    ARG_FLAG,
                   &special,  NULL, "read special-token text (<|eot_id|>) as those tokens"};
    specs[n++] =
        (arg_spec){"pieces", 0, ARG_FLAG, &pieces, NULL, "print one 'id<TAB>piece' line per token"};
    specs[n++] = (arg_spec){"count", 0, ARG_FLAG, &count, NULL, "print only the number of tokens"};
    specs[n++] = (arg_spec){"time", 0, ARG_FLAG, &timed, NULL,
                            "encode 5 times and print the best time and MB/s to stderr"};
    specs_end(specs, n);
    char **words = calloc((size_t)argc, sizeof *words); /* at most every argument */
    int n_words;
    if (!words) return 1;
    parse_result pr = args_parse(&info, specs, argc, argv, words, &n_words, argc);
    if (pr != PARSE_OK) {
        free(words);
        return pr == PARSE_HELP ? 0 : 2;
    }
    if (file && n_words > 0) {
        fprintf(stderr, "llamac tokenize: give TEXT or -f, not both\n");
        free(words);
        return 2;
    }
    char *text = NULL;
    size_t len = 0;
    if (file) {
        if (!(text = read_text_file(file, &len))) {
            fprintf(stderr, "llamac: -f %s: cannot read the file: %s\n", file, strerror(errno));
            free(words);
            return 1;
        }
    } else { /* the words, joined by single spaces */
        for (int i = 0; i < n_words; i++) len += strlen(words[i]) + 1;
        text = calloc(len + 1, 1);
        if (!text) {
            fprintf(stderr, "llamac: out of memory\n");
            free(words);
            return 1;
        }
        for (int i = 0; i < n_words; i++) {
            if (i) strcat(text, " ");
            strcat(text, words[i]);
        }
        len = strlen(text);
    }
    int rc = 1;
    lc_tokenizer *tok = NULL;
    lc_token *ids = NULL;
    size_t n_ids;
    lc_error err;
    if (open_tokenizer(&co, NULL, &tok)) goto done;
    lc_encode_options opts = {!no_bos, eos, special};
    double best = 1e300;
    for (int run = 0; run < (timed ? 5 : 1); run++) { /* encoding only: the load is not timed */
        free(ids);
        ids = NULL;
        const double t0 = lc_time_seconds();
        if (lc_tokenizer_encode_ex(tok, text, len, &opts, &ids, &n_ids, &err)) {
            report(file ? file : "text", &err);
            goto done;
        }
        const double dt = lc_time_seconds() - t0;
        best = dt < best ? dt : best;
    }
    if (timed)
        fprintf(stderr, "llamac: %zu bytes -> %zu tokens in %.1f ms = %.1f MB/s (best of 5, one thread)\n",
                len, n_ids, best * 1e3, best > 0 ? len / best / 1e6 : 0.0);
    if (count) {
        printf("%zu\n", n_ids);
    } else if (pieces) {
        for (size_t i = 0; i < n_ids; i++) {
            size_t plen;
            const char *p = lc_tokenizer_piece(tok, ids[i], &plen);
            printf("%d\t", ids[i]);
            print_piece(p, plen);
            putchar('\n');
        }
    } else {
        for (size_t i = 0; i < n_ids; i++) printf(i ? " %d" : "%d", ids[i]);
        putchar('\n');
    }
    rc = 0;
done:
    free(words);
    free(ids);
    free(text);
    lc_tokenizer_free(tok);
    return rc;
}
