#pragma once
/*
 * What the fuzz targets share: the libFuzzer entry point (also called by
 * replay.c, the plain driver of the unit suite), a check that aborts with a
 * message so that libFuzzer records the input as a crash, and an exact-size
 * copy of the input so that AddressSanitizer and valgrind see any read past
 * its end (libFuzzer's own buffer may be followed by readable bytes).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cpn/error.h"
#include "cpn/json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* An invariant of the code under test; a violation is a finding. */
#define CPN_FUZZ_CHECK(cond, ...)                                                            \
        do {                                                                                 \
                if (!(cond)) {                                                               \
                        fprintf(stderr, "%s:%d: invariant violated: %s: ", __FILE__, __LINE__, \
                                #cond);                                                      \
                        fprintf(stderr, __VA_ARGS__);                                        \
                        fputc('\n', stderr);                                                 \
                        abort();                                                             \
                }                                                                            \
        } while (0)

/* A heap copy of exactly @n bytes (no terminating NUL). Never NULL. */
static inline char *cpn_fuzz_copy(const void *data, size_t n) {
        char *p = malloc(n ? n : 1);

        if (!p)
                abort();
        if (n)
                memcpy(p, data, n);
        return p;
}

/* A NUL-terminated heap copy of @n bytes, for the C strings civetweb hands
 * over (method, path, header values). */
static inline char *cpn_fuzz_strndup(const void *data, size_t n) {
        char *p = malloc(n + 1);

        if (!p)
                abort();
        if (n)
                memcpy(p, data, n);
        p[n] = '\0';
        return p;
}

/* A refusal's text goes into a JSON answer, and the worker's into a MySQL
 * utf8mb4 column: it must be there, terminated and valid UTF-8. */
static inline void cpn_fuzz_check_error_text(const struct cpn_error *err) {
        size_t len;

        CPN_FUZZ_CHECK(memchr(err->msg, 0, sizeof(err->msg)), "unterminated message");
        len = strlen(err->msg);
        CPN_FUZZ_CHECK(len > 0, "refusal without a message");
        CPN_FUZZ_CHECK(cpn_utf8_check(err->msg, len) == 0, "message not UTF-8: %s", err->msg);
}
