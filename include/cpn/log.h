#pragma once
/*
 * Logging: one line per event to stderr, `<time> <level> <program>: text`.
 * Library modules log at debug only; main loops and handlers log where an
 * error is handled. The level is process-wide, set once by main.
 * Thread-safe: each line is written with one write(2).
 */
enum cpn_log_level {
        CPN_LOG_ERROR,
        CPN_LOG_WARN,
        CPN_LOG_INFO,
        CPN_LOG_DEBUG,
};

void cpn_log_setup(const char *program, enum cpn_log_level level);
/* Parses "error", "warn", "info", "debug"; returns 0 or -EINVAL. */
int cpn_log_level_parse(const char *s, enum cpn_log_level *out);
int cpn_log_enabled(enum cpn_log_level level);
void cpn_log(enum cpn_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define cpn_log_error(...) cpn_log(CPN_LOG_ERROR, __VA_ARGS__)
#define cpn_log_warn(...) cpn_log(CPN_LOG_WARN, __VA_ARGS__)
#define cpn_log_info(...) cpn_log(CPN_LOG_INFO, __VA_ARGS__)
#define cpn_log_debug(...) \
        do { if (cpn_log_enabled(CPN_LOG_DEBUG)) cpn_log(CPN_LOG_DEBUG, __VA_ARGS__); } while (0)
