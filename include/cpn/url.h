#pragma once
/*
 * The one URL parser of the service (Redis, MySQL and any later backend
 * URL): scheme://[user[:password]@]host[:port][/path][?query], RFC 3986's
 * generic syntax without fragments ('#' is an ordinary character). Credentials and the path are
 * percent-decoded (a '@', ':', '/' or '%' in a password is written %40,
 * %3A, %2F, %25; a literal '@' in the password also works, as the last '@'
 * of the authority ends the credentials). The host may be a name, an IPv4
 * address or a bracketed IPv6 one ("[::1]"). Pure; any thread.
 */
#include <stdbool.h>

#include "cpn/error.h"

struct cpn_url {
        char scheme[16];
        char user[128];
        char password[256];
        bool has_password;  /* "user:@h" has an empty one; "user@h" none */
        char host[256];     /* without IPv6 brackets; "" when absent */
        int port;           /* 0 when absent */
        char path[256];     /* decoded, with its leading '/'; "" when absent */
        char query[256];    /* after '?', as written; "" when absent */
};

/* Parses @url. Returns 0, or CPN_INVALID with the reason in @err (may be
 * NULL): no "scheme://", a part too long, a bad percent escape or one that
 * decodes to NUL, a port other than 1..65535 in plain digits. */
int cpn_url_parse(struct cpn_url *out, const char *url, struct cpn_error *err);

/* The value of @key in a query of key=value pairs joined by '&'
 * (percent-decoded into @buf of @n bytes). Returns 1 when found, 0 when
 * not, -EINVAL for a bad escape or a value too long. */
int cpn_url_query_get(const char *query, const char *key, char *buf, size_t n);

/* A numeric address to listen on, as a setting gives it ("host:port"). */
struct cpn_listen_addr {
        char host[48];   /* an IPv4 or IPv6 address, without brackets */
        int port;        /* 1..65535 */
        bool ipv6;
        char text[64];   /* normalized "host:port" or "[host]:port", civetweb's listening_ports form */
};

/* Parses "A.B.C.D:port", "[IPv6]:port" or "localhost:port" (taken as
 * 127.0.0.1): a listening address must be numeric (nothing resolves it)
 * and name its host, so that a bare port never means every interface by
 * accident ("0.0.0.0:port" says so). Returns 0, or CPN_INVALID with the
 * reason in @err (may be NULL). Pure; any thread. */
int cpn_url_listen_parse(struct cpn_listen_addr *out, const char *s, struct cpn_error *err);
