/* Identifier grammars, display names, RFC 3339 times, clocks, random tokens. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "cpn/types.h"

static bool id_valid(const char *s, size_t len, const char *extra) {
        if (len < 1 || len > CPN_ID_MAX)
                return false;
        for (size_t i = 0; i < len; i++) {
                unsigned char c = (unsigned char)s[i];

                if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
                        continue;
                if (c == '\0' || !strchr(extra, c))
                        return false;
        }
        return true;
}

int cpn_hex_value(char c) {
        if (c >= '0' && c <= '9')
                return c - '0';
        if (c >= 'a' && c <= 'f')
                return c - 'a' + 10;
        if (c >= 'A' && c <= 'F')
                return c - 'A' + 10;
        return -1;
}

bool cpn_id_valid(const char *s, size_t len) {
        return id_valid(s, len, "_-");
}

bool cpn_user_id_valid(const char *s, size_t len) {
        return id_valid(s, len, "_.:-");
}

bool cpn_name_valid(const char *s, size_t len) {
        size_t cps = 0;

        if (len >= CPN_NAME_BYTES)
                return false;
        for (size_t i = 0; i < len; i++) {
                unsigned char c = (unsigned char)s[i];

                if (c < 0x20 || c == 0x7f)
                        return false;
                if ((c & 0xc0) != 0x80)
                        cps++;
        }
        return cps >= 1 && cps <= CPN_NAME_MAX;
}

static int digits(const char **p, int n, int *out) {
        int v = 0;

        for (int i = 0; i < n; i++, (*p)++) {
                if (**p < '0' || **p > '9')
                        return -EINVAL;
                v = v * 10 + (**p - '0');
        }
        *out = v;
        return 0;
}

static int expect(const char **p, const char *set) {
        if (!**p || !strchr(set, **p))
                return -EINVAL;
        (*p)++;
        return 0;
}

#define TIME_MAX_MS 253402300799999LL /* 9999-12-31T23:59:59.999Z */

int cpn_time_parse(const char *s, int64_t *ms) {
        static const int mdays[] = { 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
        int Y, M, D, h, m, sec, frac = 0, oh = 0, om = 0, sign = 0;
        const char *p = s;
        struct tm tm = { 0 };
        time_t t;

        if (digits(&p, 4, &Y) || expect(&p, "-") || digits(&p, 2, &M) || expect(&p, "-") ||
            digits(&p, 2, &D) || expect(&p, "Tt") || digits(&p, 2, &h) || expect(&p, ":") ||
            digits(&p, 2, &m) || expect(&p, ":") || digits(&p, 2, &sec))
                return -EINVAL;
        if (*p == '.') {
                int nd = 0, scale = 100;

                p++;
                while (*p >= '0' && *p <= '9') {
                        if (nd < 3)
                                frac += (*p - '0') * scale;
                        scale /= 10;
                        nd++;
                        p++;
                }
                if (nd == 0 || nd > 9)
                        return -EINVAL;
        }
        if (*p == 'Z' || *p == 'z') {
                p++;
        } else if (*p == '+' || *p == '-') {
                sign = *p == '-' ? -1 : 1;
                p++;
                if (digits(&p, 2, &oh) || expect(&p, ":") || digits(&p, 2, &om) || oh > 23 || om > 59)
                        return -EINVAL;
        } else {
                return -EINVAL;
        }
        if (*p)
                return -EINVAL;
        if (Y < 1970 || Y > 9999 || M < 1 || M > 12 || D < 1 || D > mdays[M - 1] || h > 23 ||
            m > 59 || sec > 60)
                return -EINVAL;
        if (M == 2 && D == 29 && !((Y % 4 == 0 && Y % 100 != 0) || Y % 400 == 0))
                return -EINVAL;
        if (sec == 60) /* leap second: RFC 3339 allows it; count it as :59 */
                sec = 59;
        tm.tm_year = Y - 1900;
        tm.tm_mon = M - 1;
        tm.tm_mday = D;
        tm.tm_hour = h;
        tm.tm_min = m;
        tm.tm_sec = sec;
        t = timegm(&tm);
        if (t == (time_t)-1)
                return -EINVAL;
        *ms = (int64_t)t * 1000 + frac - (int64_t)sign * (oh * 3600 + om * 60) * 1000;
        /* The offset may carry the instant out of 1970..9999 UTC: before 1970
         * it is no unix time; after 9999-12-31T23:59:59.999Z it has no
         * four-digit RFC 3339 form to be shown in, and MySQL's DATETIME
         * cannot store it. */
        if (*ms < 0 || *ms > TIME_MAX_MS)
                return -EINVAL;
        return 0;
}

char *cpn_time_format(int64_t ms, char *buf, size_t n) {
        time_t t = (time_t)(ms / 1000);
        int frac = (int)(ms % 1000);
        struct tm tm;

        gmtime_r(&t, &tm);
        if (frac)
                snprintf(buf, n, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                         tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, frac);
        else
                snprintf(buf, n, "%04d-%02d-%02dT%02d:%02d:%02dZ", tm.tm_year + 1900,
                         tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
        return buf;
}

char *cpn_time_json(int64_t ms, char *buf, size_t n) {
        if (ms < 0 || ms == CPN_TIME_NEVER) {
                snprintf(buf, n, "null");
                return buf;
        }
        buf[0] = '"';
        cpn_time_format(ms, buf + 1, n - 2);
        strcat(buf, "\"");
        return buf;
}

int64_t cpn_time_now_ms(void) {
        struct timespec ts;

        clock_gettime(CLOCK_REALTIME, &ts);
        return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int cpn_random_token(char *buf, size_t n) {
        unsigned char raw[64];
        size_t k = (n - 1) / 2, got = 0;

        if (n < 3 || k > sizeof(raw))
                return -EINVAL;
        while (got < k) {
                ssize_t r = getrandom(raw + got, k - got, 0);

                if (r < 0 && errno != EINTR)
                        return -errno;
                if (r > 0)
                        got += (size_t)r;
        }
        for (size_t i = 0; i < k; i++)
                snprintf(buf + 2 * i, 3, "%02x", raw[i]);
        buf[2 * k] = '\0';
        return 0;
}

int cpn_uuid_v4(char out[37]) {
        static const char variant[] = "89ab";
        char hex[33];
        int r = cpn_random_token(hex, sizeof(hex)), o = 0;

        if (r)
                return r;
        hex[12] = '4';                             /* version 4: random */
        /* RFC 9562 variant 10xx: the digit's two low random bits stay */
        hex[16] = variant[(hex[16] <= '9' ? hex[16] - '0' : hex[16] - 'a' + 10) & 3];
        for (int i = 0; i < 32; i++) {
                if (i == 8 || i == 12 || i == 16 || i == 20)
                        out[o++] = '-';
                out[o++] = hex[i];
        }
        out[o] = '\0';
        return 0;
}

static bool hex_lower(char c) {
        return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
}

bool cpn_uuid_valid(const char *s, size_t len) {
        if (len != 36)
                return false;
        for (size_t i = 0; i < len; i++)
                if (i == 8 || i == 13 || i == 18 || i == 23 ? s[i] != '-' : !hex_lower(s[i]))
                        return false;
        return true;
}

int64_t cpn_mono_ms(void) {
        return (int64_t)(cpn_mono_ns() / 1000000);
}

uint64_t cpn_mono_ns(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}
