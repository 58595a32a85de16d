/*
 * The plain driver of a fuzz target: links with one target's
 * LLVMFuzzerTestOneInput and feeds it every file of the folders (or the
 * files) named on the command line, in name order, each as an exact-size
 * heap buffer. Dot files are skipped. That way the seed corpus and every
 * crash reproducer run in each build of the unit suite (plain, ASan,
 * valgrind) without libFuzzer. Exit 0 when every input ran; 1 when a
 * folder cannot be read or there was nothing to run at all (a replay of
 * nothing proves nothing). A failing input aborts, after its name was
 * printed.
 */
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz.h"

/* Reads @path into an exact-size heap buffer. Returns 0 or -errno. */
static int read_file(const char *path, uint8_t **ret, size_t *len) {
        FILE *f = fopen(path, "rb");
        uint8_t *buf = NULL;
        size_t n = 0, cap = 0;

        if (!f)
                return -errno;
        for (;;) {
                if (n == cap) {
                        uint8_t *p = realloc(buf, cap ? cap * 2 : 4096);

                        if (!p) {
                                free(buf);
                                fclose(f);
                                return -ENOMEM;
                        }
                        buf = p;
                        cap = cap ? cap * 2 : 4096;
                }
                size_t got = fread(buf + n, 1, cap - n, f);

                n += got;
                if (got == 0)
                        break;
        }
        if (ferror(f)) {
                free(buf);
                fclose(f);
                return -EIO;
        }
        fclose(f);
        /* Shrink to the exact size, so a read past the end is caught. */
        *ret = (uint8_t *)cpn_fuzz_copy(buf, n);
        *len = n;
        free(buf);
        return 0;
}

static int run_file(const char *path) {
        uint8_t *data = NULL;
        size_t len = 0;
        int r = read_file(path, &data, &len);

        if (r < 0) {
                fprintf(stderr, "%s: %s\n", path, strerror(-r));
                return r;
        }
        printf("%s (%zu bytes)\n", path, len);
        fflush(stdout);
        LLVMFuzzerTestOneInput(data, len);
        free(data);
        return 0;
}

static int skip_dot(const struct dirent *d) {
        return d->d_name[0] != '.';
}

/* Runs every file of @dir; adds their number to *count. */
static int run_dir(const char *dir, size_t *count) {
        struct dirent **names;
        int n = scandir(dir, &names, skip_dot, alphasort), r = 0;

        if (n < 0) {
                fprintf(stderr, "%s: %s\n", dir, strerror(errno));
                return -errno;
        }
        for (int i = 0; i < n; i++) {
                char path[4096];
                struct stat st;

                snprintf(path, sizeof(path), "%s/%s", dir, names[i]->d_name);
                if (r == 0 && stat(path, &st) == 0 && S_ISREG(st.st_mode)) {
                        r = run_file(path);
                        if (r == 0)
                                (*count)++;
                }
                free(names[i]);
        }
        free(names);
        return r;
}

int main(int argc, char **argv) {
        size_t count = 0;

        if (argc < 2) {
                fprintf(stderr, "usage: %s FOLDER|FILE...\n", argv[0]);
                return 2;
        }
        for (int i = 1; i < argc; i++) {
                struct stat st;
                int r;

                if (stat(argv[i], &st) < 0) {
                        fprintf(stderr, "%s: %s\n", argv[i], strerror(errno));
                        return 1;
                }
                if (S_ISDIR(st.st_mode)) {
                        r = run_dir(argv[i], &count);
                } else {
                        r = run_file(argv[i]);
                        if (r == 0)
                                count++;
                }
                if (r < 0)
                        return 1;
        }
        printf("%zu inputs ran without a finding\n", count);
        if (count == 0) {
                fprintf(stderr, "no inputs: nothing was tested\n");
                return 1;
        }
        return 0;
}
