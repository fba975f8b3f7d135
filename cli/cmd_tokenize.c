/* llamac tokenize: text to token ids. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "common.h"

/* Shows a piece with its bytes visible: spaces stay, control bytes become \xNN. */
static void print_piece(const char *s, size_t len) {
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '\\')
            fputs("\\\\", stdout);
        else if (c < 0x20 || c == 0x7F)
            printf("\\x%02x", c);
        else
            putchar(c);
    }
}

int cmd_tokenize(int argc, char **argv) {
    static const command_info info = {
        "tokenize",
        "Print the token ids of a text on one line (with BOS first, as a prompt "
        "gets them).",
        "-z tokenizer.bin [--pieces] [--no-bos] [--eos] (TEXT... | -f FILE)", NULL};
    common_opts co;
    common_defaults(&co);
    const char *file = NULL;
    bool no_bos = false, eos = false, pieces = false, count = false;
    arg_spec specs[MAX_SPECS];
    int n = 0;
    specs[n++] = (arg_spec){
        "tokenizer",   'z',    ARG_STRING,
        &co.tokenizer, "FILE", "tokenizer.bin (default: tokenizer.bin on the model search path)"};
    specs[n++] = (arg_spec){"file", 'f',    ARG_STRING,
                            &file,  "FILE", "read the text from a file (- for stdin)"};
    specs[n++] = (arg_spec){"no-bos", 0, ARG_FLAG, &no_bos, NULL, "do not prepend BOS"};
    specs[n++] = (arg_spec){"eos", 0, ARG_FLAG, &eos, NULL, "append EOS"};
    specs[n++] =
        (arg_spec){"pieces", 0, ARG_FLAG, &pieces, NULL, "print one 'id<TAB>piece' line per token"};
    specs[n++] = (arg_spec){"count", 0, ARG_FLAG, &count, NULL, "print only the number of tokens"};
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
    if (lc_tokenizer_encode(tok, text, len, !no_bos, eos, &ids, &n_ids, &err)) {
        report(file ? file : "text", &err);
        goto done;
    }
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
