/* The one URL parser: see url.h. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "cpn/types.h"
#include "cpn/url.h"

/* Copies @s[0..len) percent-decoded into @dst (@n bytes); refuses NUL, a
 * bad escape and overflow. */
static int pct_copy(char *dst, size_t n, const char *s, size_t len) {
        size_t o = 0;

        for (size_t i = 0; i < len; i++) {
                int c = (unsigned char)s[i];

                if (c == '%') {
                        int hi, lo;

                        if (i + 2 >= len)
                                return -EINVAL;
                        hi = cpn_hex_value(s[i + 1]);
                        lo = cpn_hex_value(s[i + 2]);
                        if (hi < 0 || lo < 0)
                                return -EINVAL;
                        c = hi * 16 + lo;
                        i += 2;
                }
                if (o + 1 >= n || c == 0)
                        return -EINVAL;
                dst[o++] = (char)c;
        }
        dst[o] = '\0';
        return 0;
}

static int copy_raw(char *dst, size_t n, const char *s, size_t len) {
        if (len >= n)
                return -EINVAL;
        memcpy(dst, s, len);
        dst[len] = '\0';
        return 0;
}

static int parse_port(const char *s, size_t len, int *out) {
        int v = 0;

        if (len == 0 || len > 5)
                return -EINVAL;
        for (size_t i = 0; i < len; i++) {
                if (s[i] < '0' || s[i] > '9')
                        return -EINVAL;
                v = v * 10 + (s[i] - '0');
        }
        if (v < 1 || v > 65535)
                return -EINVAL;
        *out = v;
        return 0;
}

int cpn_url_parse(struct cpn_url *out, const char *url, struct cpn_error *err) {
        const char *sep = strstr(url, "://"), *auth, *auth_end, *at, *host, *host_end, *q;
        size_t slen;

        memset(out, 0, sizeof(*out));
        if (!sep || sep == url)
                return cpn_error_set(err, CPN_INVALID, "url: expected scheme://");
        slen = (size_t)(sep - url);
        for (size_t i = 0; i < slen; i++)
                if (!((url[i] >= 'a' && url[i] <= 'z') || (url[i] >= '0' && url[i] <= '9') || url[i] == '+' ||
                      url[i] == '-' || url[i] == '.'))
                        return cpn_error_set(err, CPN_INVALID, "url: bad scheme");
        if (copy_raw(out->scheme, sizeof(out->scheme), url, slen))
                return cpn_error_set(err, CPN_INVALID, "url: scheme too long");
        auth = sep + 3;
        auth_end = auth + strcspn(auth, "/?");
        at = memrchr(auth, '@', (size_t)(auth_end - auth));
        host = auth;
        if (at) {
                const char *colon = memchr(auth, ':', (size_t)(at - auth));

                if (pct_copy(out->user, sizeof(out->user), auth, (size_t)((colon ? colon : at) - auth)))
                        return cpn_error_set(err, CPN_INVALID, "url: bad or too long user");
                if (colon) {
                        out->has_password = true;
                        if (pct_copy(out->password, sizeof(out->password), colon + 1, (size_t)(at - colon - 1)))
                                return cpn_error_set(err, CPN_INVALID, "url: bad or too long password");
                }
                host = at + 1;
        }
        if (host < auth_end && *host == '[') {
                const char *close = memchr(host, ']', (size_t)(auth_end - host));

                if (!close || close == host + 1 ||
                    copy_raw(out->host, sizeof(out->host), host + 1, (size_t)(close - host - 1)))
                        return cpn_error_set(err, CPN_INVALID, "url: bad IPv6 host");
                host_end = close + 1;
                if (host_end < auth_end && *host_end != ':')
                        return cpn_error_set(err, CPN_INVALID, "url: junk after the IPv6 host");
        } else {
                host_end = memchr(host, ':', (size_t)(auth_end - host));
                if (!host_end)
                        host_end = auth_end;
                if (copy_raw(out->host, sizeof(out->host), host, (size_t)(host_end - host)))
                        return cpn_error_set(err, CPN_INVALID, "url: host too long");
        }
        if (host_end < auth_end && parse_port(host_end + 1, (size_t)(auth_end - host_end - 1), &out->port))
                return cpn_error_set(err, CPN_INVALID, "url: bad port");
        q = strchr(auth_end, '?');
        if (*auth_end == '/' &&
            pct_copy(out->path, sizeof(out->path), auth_end, q ? (size_t)(q - auth_end) : strlen(auth_end)))
                return cpn_error_set(err, CPN_INVALID, "url: bad or too long path");
        if (q && copy_raw(out->query, sizeof(out->query), q + 1, strlen(q + 1)))
                return cpn_error_set(err, CPN_INVALID, "url: query too long");
        return 0;
}

int cpn_url_query_get(const char *query, const char *key, char *buf, size_t n) {
        size_t klen = strlen(key);

        for (const char *p = query; *p;) {
                size_t len = strcspn(p, "&");

                if (len > klen && strncmp(p, key, klen) == 0 && p[klen] == '=')
                        return pct_copy(buf, n, p + klen + 1, len - klen - 1) ? -EINVAL : 1;
                p += len;
                if (*p == '&')
                        p++;
        }
        return 0;
}

int cpn_url_listen_parse(struct cpn_listen_addr *out, const char *s, struct cpn_error *err) {
        const char *colon;
        unsigned char bin[16];
        size_t hlen;

        memset(out, 0, sizeof(*out));
        if (*s == '[') {
                const char *close = strchr(s, ']');

                if (!close || close[1] != ':')
                        return cpn_error_set(err, CPN_INVALID, "expected [IPv6 address]:port");
                hlen = (size_t)(close - s - 1);
                if (hlen == 0 || copy_raw(out->host, sizeof(out->host), s + 1, hlen) ||
                    inet_pton(AF_INET6, out->host, bin) != 1)
                        return cpn_error_set(err, CPN_INVALID, "not an IPv6 address between the brackets");
                out->ipv6 = true;
                colon = close + 1;
        } else {
                colon = strrchr(s, ':');
                if (!colon)
                        return cpn_error_set(err, CPN_INVALID, "expected host:port (e.g. 127.0.0.1:9102)");
                hlen = (size_t)(colon - s);
                if (hlen == 0)
                        return cpn_error_set(err, CPN_INVALID,
                                             "the host is missing (0.0.0.0:port listens on every interface)");
                if (copy_raw(out->host, sizeof(out->host), s, hlen))
                        return cpn_error_set(err, CPN_INVALID, "the host is too long");
                if (strcmp(out->host, "localhost") == 0)
                        snprintf(out->host, sizeof(out->host), "127.0.0.1");
                if (inet_pton(AF_INET, out->host, bin) != 1)
                        return cpn_error_set(err, CPN_INVALID,
                                             "the host must be an IPv4 address, [IPv6 address] or localhost");
        }
        if (parse_port(colon + 1, strlen(colon + 1), &out->port))
                return cpn_error_set(err, CPN_INVALID, "the port must be 1..65535");
        /* Written back as the kernel would print it: "::0001" is "::1". */
        inet_ntop(out->ipv6 ? AF_INET6 : AF_INET, bin, out->host, sizeof(out->host));
        snprintf(out->text, sizeof(out->text), out->ipv6 ? "[%s]:%d" : "%s:%d", out->host, out->port);
        return 0;
}
