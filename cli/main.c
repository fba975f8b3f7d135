/* llamac: the command-line front end. Each subcommand lives in its own file. */
#include <stdio.h>
#include <string.h>

#include "commands.h"

static const struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} COMMANDS[] = {
    {"generate", cmd_generate, "continue a prompt and stream the text"},
    {"chat", cmd_chat, "talk with a chat model (Llama 2 template), turn by turn"},
    {"tokenize", cmd_tokenize, "print the token ids of a text"},
    {"bench", cmd_bench, "measure prompt (pp) and generation (tg) speed"},
    {"logits", cmd_logits, "write the raw float32 logits of a token sequence"},
    {"serve", cmd_serve, "serve the model over HTTP (OpenAI API, batched, streaming)"},
    {"perplexity", cmd_perplexity, "score a text: perplexity, and KL divergence against a base"},
    {"mkmodel", cmd_mkmodel, "write a random-weight checkpoint of a standard shape"},
    {"membw", cmd_membw, "measure the memory bandwidth decoding is bound by"},
    {"info", cmd_info, "describe a model file"},
    {"quantize", cmd_quantize, "write a model as GGUF (f32, f16, bf16, q8_0 or q4_0)"},
};

static void usage(FILE *f) {
    fprintf(f, "usage: llamac <command> [options]   (llamac <command> --help for its options)\n\n"
               "llamac runs Llama-family language models (llama2.c checkpoints, GGUF) on the CPU "
               "or a GPU.\n\n"
               "commands:\n");
    for (size_t i = 0; i < sizeof COMMANDS / sizeof COMMANDS[0]; i++)
        fprintf(f, "  %-10s %s\n", COMMANDS[i].name, COMMANDS[i].summary);
    fprintf(f, "\nexample: llamac generate -m stories15M.bin -z tokenizer.bin -p \"Once upon a "
               "time\" -n 256\n");
}

int main(int argc, char **argv) {
    if (argc < 2 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0 ||
        strcmp(argv[1], "help") == 0) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    for (size_t i = 0; i < sizeof COMMANDS / sizeof COMMANDS[0]; i++)
        if (strcmp(argv[1], COMMANDS[i].name) == 0) return COMMANDS[i].run(argc - 1, argv + 1);
    fprintf(stderr, "llamac: unknown command '%s' (llamac --help lists them)\n", argv[1]);
    return 2;
}
