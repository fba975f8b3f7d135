/* Runs every test (or those whose names contain argv[1]) and prints a summary. */
#include <string.h>

#include "harness.h"
#include "tests.h"

static const test_case TESTS[] = {
#define X(name) {#name, name},
#ifdef LLAMAC_TESTS_KERNELS_ONLY
    TEST_LIST_KERNELS
#else
    TEST_LIST
#endif
#undef X
};

int main(int argc, char **argv) {
    int passed = 0, failed = 0, skipped = 0;
    for (size_t i = 0; i < sizeof TESTS / sizeof TESTS[0]; i++) {
        if (argc > 1 && !strstr(TESTS[i].name, argv[1])) continue;
        test_ctx t = {TESTS[i].name, 0, "", ""};
        TESTS[i].fn(&t);
        if (t.skipped[0] && !t.failures) {
            printf("skip %s: %s\n", t.name, t.skipped);
            skipped++;
        } else if (t.failures) {
            printf("FAIL %s (%d checks failed)\n     %s\n", t.name, t.failures, t.first);
            failed++;
        } else {
            printf("ok   %s\n", t.name);
            passed++;
        }
        fflush(stdout);
    }
    printf("unit: %d passed, %d failed, %d skipped\n", passed, failed, skipped);
    return failed ? 1 : 0;
}
