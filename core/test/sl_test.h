/*
 * sl_test.h: the tiny harness every C unit test uses.
 *
 * SL_CHECK(cond, fmt, ...) records one check; a failing check prints file:line and the
 * message. SL_TEST_MAIN() ends main() by printing "<name>: N passed, N failed" and
 * returning non-zero when anything failed; `make test` adds those lines up.
 */
#ifndef SL_TEST_H
#define SL_TEST_H

#include <stdio.h>

static int sl_test_passed, sl_test_failed;

#define SL_CHECK(cond, ...)                                                                   \
    do {                                                                                      \
        if (cond) {                                                                           \
            sl_test_passed++;                                                                 \
        } else {                                                                              \
            sl_test_failed++;                                                                 \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);                              \
            fprintf(stderr, __VA_ARGS__);                                                     \
            fputc('\n', stderr);                                                              \
        }                                                                                     \
    } while (0)

#define SL_TEST_MAIN(name)                                                                    \
    do {                                                                                      \
        printf("%s: %d passed, %d failed\n", (name), sl_test_passed, sl_test_failed);         \
        return sl_test_failed ? 1 : 0;                                                        \
    } while (0)

#endif
