/* One line per event on stderr, written with a single write(2). */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "cpn/log.h"

static const char *log_program = "coupon";
static enum cpn_log_level log_level = CPN_LOG_INFO;
static const char *const level_names[] = { "error", "warn", "info", "debug" };

void cpn_log_setup(const char *program, enum cpn_log_level level) {
        log_program = program;
        log_level = level;
}

int cpn_log_level_parse(const char *s, enum cpn_log_level *out) {
        for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++) {
                if (strcasecmp(s, level_names[i]) == 0) {
                        *out = (enum cpn_log_level)i;
                        return 0;
                }
        }
        return -EINVAL;
}

int cpn_log_enabled(enum cpn_log_level level) {
        return level <= log_level;
}

void cpn_log(enum cpn_log_level level, const char *fmt, ...) {
        char line[1024];
        struct timespec ts;
        struct tm tm;
        va_list ap;
        int n, m;

        if (level > log_level)
                return;
        clock_gettime(CLOCK_REALTIME, &ts);
        gmtime_r(&ts.tv_sec, &tm);
        n = snprintf(line, sizeof(line), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s %s: ",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                     tm.tm_sec, ts.tv_nsec / 1000000, level_names[level], log_program);
        va_start(ap, fmt);
        m = vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
        va_end(ap);
        if (m < 0)
                m = 0;
        n += m;
        if (n > (int)sizeof(line) - 2)
                n = (int)sizeof(line) - 2;
        /* One event, one line: fold embedded newlines. */
        for (int i = 0; i < n; i++)
                if (line[i] == '\n' || line[i] == '\r')
                        line[i] = ' ';
        line[n++] = '\n';
        (void)!write(STDERR_FILENO, line, (size_t)n);
}
