/*
 * Unit tests of the connection URL parsers: cpn_redis_url_parse
 * (src/store/redis.c) and cpn_db_url_parse (src/db/db.c), and of the
 * listening addresses of src/common/url.c. No network.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "cpn/db.h"
#include "cpn/error.h"
#include "cpn/store.h"
#include "cpn/url.h"

/* ---- Redis ---- */

static void redis_ok(const char *url, struct cpn_redis_url *u) {
        struct cpn_error err = { { 0 } };
        int r = cpn_redis_url_parse(u, url, &err);

        if (r != 0)
                fail_msg("redis url \"%s\": %d (%s), expected 0", url, r, err.msg);
}

static void redis_bad(const char *url) {
        struct cpn_redis_url u;
        struct cpn_error err = { { 0 } };
        int r = cpn_redis_url_parse(&u, url, &err);

        if (r != CPN_INVALID)
                fail_msg("redis url \"%s\": %d (host \"%s\" port %d db %d), expected CPN_INVALID",
                         url, r, u.host, u.port, u.db);
        if (!err.msg[0])
                fail_msg("redis url \"%s\": no message", url);
}

static void assert_redis(const struct cpn_redis_url *u, const char *host, int port, int db,
                         const char *user, const char *password) {
        assert_string_equal(u->host, host);
        assert_int_equal(u->port, port);
        assert_int_equal(u->db, db);
        assert_string_equal(u->user, user);
        assert_string_equal(u->password, password);
        assert_string_equal(u->unix_path, "");
}

static void test_redis_defaults(void **state) {
        struct cpn_redis_url u;

        redis_ok("redis://127.0.0.1:6379/0", &u);
        assert_redis(&u, "127.0.0.1", 6379, 0, "", "");
        redis_ok("redis://localhost", &u);
        assert_redis(&u, "localhost", 6379, 0, "", "");
        redis_ok("redis://localhost/", &u);
        assert_redis(&u, "localhost", 6379, 0, "", "");
        redis_ok("redis://r1.example.com:7000", &u);
        assert_redis(&u, "r1.example.com", 7000, 0, "", "");
        redis_ok("redis://h/15", &u);
        assert_redis(&u, "h", 6379, 15, "", "");
        redis_ok("redis://h:1/2", &u);
        assert_redis(&u, "h", 1, 2, "", "");
        redis_ok("redis://h:65535/0", &u);
        assert_redis(&u, "h", 65535, 0, "", "");
}

static void test_redis_credentials(void **state) {
        struct cpn_redis_url u;

        redis_ok("redis://:s3cret@h", &u);                 /* password only */
        assert_redis(&u, "h", 6379, 0, "", "s3cret");
        redis_ok("redis://:s3cret@h:6380/3", &u);
        assert_redis(&u, "h", 6380, 3, "", "s3cret");
        redis_ok("redis://alice:s3cret@h:6380/2", &u);    /* ACL user */
        assert_redis(&u, "h", 6380, 2, "alice", "s3cret");
        redis_ok("redis://alice:@h", &u);
        assert_redis(&u, "h", 6379, 0, "alice", "");
        redis_ok("redis://:p@ss:w0rd@h/1", &u);           /* '@' and ':' in the password */
        assert_redis(&u, "h", 6379, 1, "", "p@ss:w0rd");
}

static void test_redis_unix(void **state) {
        struct cpn_redis_url u;

        redis_ok("unix:///tmp/redis.sock", &u);
        assert_string_equal(u.unix_path, "/tmp/redis.sock");
        assert_int_equal(u.db, 0);
        redis_ok("unix:///var/run/redis/redis.sock?db=2", &u);
        assert_string_equal(u.unix_path, "/var/run/redis/redis.sock");
        assert_int_equal(u.db, 2);
        redis_ok("redis+unix:///x.sock?db=5", &u);
        assert_string_equal(u.unix_path, "/x.sock");
        assert_int_equal(u.db, 5);
        redis_bad("unix://");
        redis_bad("unix://?db=1");
        redis_bad("unix:///x.sock?db=");
        redis_bad("unix:///x.sock?db=a");
        redis_bad("unix:///x.sock?db=-1");
        redis_bad("unix:///x.sock?foo=1");
        redis_bad("unix:///x.sock?db=1&x=2");
}

static void test_redis_bad_port(void **state) {
        static const char *const bad[] = {
                "redis://h:0", "redis://h:65536", "redis://h:abc", "redis://h:", "redis://h:/0",
                "redis://h:-1", "redis://h:+1", "redis://h: 1", "redis://h:1x/0", "redis://h:1234567890",
                "redis://h:99999999999999999999", "redis://h:6379:6380",
        };

        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
                redis_bad(bad[i]);
}

static void test_redis_missing_host(void **state) {
        redis_bad("redis://");
        redis_bad("redis://:6379");
        redis_bad("redis:///0");
        redis_bad("redis://:6379/0");
        redis_bad("redis://u:p@");
        redis_bad("redis://u:p@:6379/0");
        redis_bad("redis://u:p@/0");
}

static void test_redis_bad_db(void **state) {
        redis_bad("redis://h/abc");
        redis_bad("redis://h/1x");
        redis_bad("redis://h/-1");
        redis_bad("redis://h/+1");
        redis_bad("redis://h/1/2");
        redis_bad("redis://h/ 1");
        redis_bad("redis://h:6379/1.5");
        redis_bad("redis://h/99999999999");
}

static void test_redis_bad_scheme(void **state) {
        redis_bad("");
        redis_bad("h:6379");
        redis_bad("http://h:6379");
        redis_bad("rediss://h:6379");   /* TLS is not supported: refused, not silently plain */
        redis_bad("redis:/h");
        redis_bad("redis:h");
        redis_bad("mysql://u:p@h/db");
        redis_bad("unix:/tmp/x.sock");
}

static void test_redis_too_long(void **state) {
        char url[1024], host[300];
        struct cpn_redis_url u;

        memset(host, 'h', sizeof(host));
        host[255] = '\0';
        snprintf(url, sizeof(url), "redis://%s:1/0", host);
        redis_ok(url, &u);
        assert_string_equal(u.host, host);
        host[255] = 'h';
        host[256] = '\0';
        snprintf(url, sizeof(url), "redis://%s:1/0", host);
        redis_bad(url);
        snprintf(url, sizeof(url), "redis://:%s@h", host);   /* 256-byte password */
        redis_bad(url);
        snprintf(url, sizeof(url), "unix://%s", host);
        redis_bad(url);
        assert_int_equal(cpn_redis_url_parse(&u, "redis://", NULL), CPN_INVALID); /* NULL err */
}

/* ---- MySQL ---- */

static void db_ok(const char *url, struct cpn_db_url *u) {
        struct cpn_error err = { { 0 } };
        int r = cpn_db_url_parse(u, url, &err);

        if (r != 0)
                fail_msg("mysql url \"%s\": %d (%s), expected 0", url, r, err.msg);
}

static void db_bad(const char *url) {
        struct cpn_db_url u;
        struct cpn_error err = { { 0 } };
        int r = cpn_db_url_parse(&u, url, &err);

        if (r != CPN_INVALID)
                fail_msg("mysql url \"%s\": %d (host \"%s\" port %d db \"%s\"), expected CPN_INVALID",
                         url, r, u.host, u.port, u.database);
        if (!err.msg[0])
                fail_msg("mysql url \"%s\": no message", url);
}

static void assert_db(const struct cpn_db_url *u, const char *user, const char *password,
                      const char *host, int port, const char *database, const char *socket) {
        assert_string_equal(u->user, user);
        assert_string_equal(u->password, password);
        assert_string_equal(u->host, host);
        assert_int_equal(u->port, port);
        assert_string_equal(u->database, database);
        assert_string_equal(u->unix_path, socket);
}

static void test_db_full(void **state) {
        struct cpn_db_url u;

        db_ok("mysql://coupon:coupon@127.0.0.1:3306/coupon", &u);
        assert_db(&u, "coupon", "coupon", "127.0.0.1", 3306, "coupon", "");
        db_ok("mysql://app:pw@db.example.com:13306/prod_db", &u);
        assert_db(&u, "app", "pw", "db.example.com", 13306, "prod_db", "");
        db_ok("mariadb://app:pw@h:1/d", &u);
        assert_db(&u, "app", "pw", "h", 1, "d", "");
        db_ok("mysql://app:pw@h:65535/d", &u);
        assert_db(&u, "app", "pw", "h", 65535, "d", "");
}

static void test_db_default_port(void **state) {
        struct cpn_db_url u;

        db_ok("mysql://u:p@h/db", &u);
        assert_db(&u, "u", "p", "h", 3306, "db", "");
        db_ok("mysql://u@h/db", &u);                     /* no password */
        assert_db(&u, "u", "", "h", 3306, "db", "");
        db_ok("mysql://h/db", &u);                       /* no credentials */
        assert_db(&u, "", "", "h", 3306, "db", "");
        db_ok("mysql://u:@h/db", &u);
        assert_db(&u, "u", "", "h", 3306, "db", "");
}

static void test_db_percent(void **state) {
        struct cpn_db_url u;

        db_ok("mysql://u:p%40ss%2Fw%3Ard%25@h/db", &u);
        assert_db(&u, "u", "p@ss/w:rd%", "h", 3306, "db", "");
        db_ok("mysql://us%65r:%20x%2a@h:3307/db", &u);
        assert_db(&u, "user", " x*", "h", 3307, "db", "");
        db_ok("mysql://u:p@ss@h/db", &u);                /* a raw '@' in the password */
        assert_db(&u, "u", "p@ss", "h", 3306, "db", "");
        db_ok("mysql://u:a:b@h/db", &u);                 /* a raw ':' in the password */
        assert_db(&u, "u", "a:b", "h", 3306, "db", "");
        db_ok("mysql://u:p@h/my%2ddb", &u);
        assert_db(&u, "u", "p", "h", 3306, "my-db", "");
        db_bad("mysql://u:p%zz@h/db");
        db_bad("mysql://u:p%4@h/db");
        db_bad("mysql://u:p%@h/db");
        db_bad("mysql://u:p%00x@h/db");                  /* NUL refused */
        db_bad("mysql://u%00:p@h/db");
        db_bad("mysql://u:p@h/d%00b");
        db_bad("mysql://u:p@h/db%");
}

static void test_db_socket(void **state) {
        struct cpn_db_url u;

        db_ok("mysql://u:p@localhost/db?socket=/run/mysqld/mysqld.sock", &u);
        assert_db(&u, "u", "p", "localhost", 3306, "db", "/run/mysqld/mysqld.sock");
        db_ok("mysql://u:p@localhost/db?socket=%2Ftmp%2Fm.sock", &u);
        assert_db(&u, "u", "p", "localhost", 3306, "db", "/tmp/m.sock");
        db_bad("mysql://u:p@localhost/db?sock=/x");
        db_bad("mysql://u:p@localhost/db?charset=utf8");
        db_bad("mysql://u:p@localhost/db?socket=/x%zz");
}

static void test_db_missing_database(void **state) {
        db_bad("mysql://u:p@h");
        db_bad("mysql://u:p@h:3306");
        db_bad("mysql://u:p@h/");
        db_bad("mysql://u:p@h:3306/");
        db_bad("mysql://u:p@h/?socket=/x");
}

static void test_db_bad_port(void **state) {
        static const char *const bad[] = {
                "mysql://u:p@h:0/db", "mysql://u:p@h:65536/db", "mysql://u:p@h:abc/db",
                "mysql://u:p@h:/db", "mysql://u:p@h:33x/db", "mysql://u:p@h:-1/db",
                "mysql://u:p@h:99999999999999999999/db", "mysql://u:p@h:3306:1/db",
        };

        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
                db_bad(bad[i]);
}

static void test_db_missing_host(void **state) {
        db_bad("mysql://u:p@/db");
        db_bad("mysql:///db");
        db_bad("mysql://u:p@:3306/db");
        db_bad("mysql://:3306/db");
}

static void test_db_bad_scheme(void **state) {
        db_bad("");
        db_bad("postgres://u:p@h/db");
        db_bad("mysql:/u:p@h/db");
        db_bad("mysql:u:p@h/db");
        db_bad("http://h/db");
        db_bad("redis://h/0");
        db_bad("u:p@h/db");
}

static void test_db_too_long(void **state) {
        char url[1024], s[300];
        struct cpn_db_url u;

        memset(s, 'd', sizeof(s));
        s[64] = '\0';
        snprintf(url, sizeof(url), "mysql://u:p@h/%s", s);
        db_ok(url, &u);
        assert_string_equal(u.database, s);
        s[64] = 'd';
        s[65] = '\0';
        snprintf(url, sizeof(url), "mysql://u:p@h/%s", s);
        db_bad(url);
        memset(s, 'h', sizeof(s));
        s[255] = '\0';
        snprintf(url, sizeof(url), "mysql://u:p@%s/db", s);
        db_ok(url, &u);
        assert_string_equal(u.host, s);
        s[255] = 'h';
        s[256] = '\0';
        snprintf(url, sizeof(url), "mysql://u:p@%s/db", s);
        db_bad(url);
        snprintf(url, sizeof(url), "mysql://u:%s@h/db", s);  /* 256-byte password */
        db_bad(url);
        assert_int_equal(cpn_db_url_parse(&u, "", NULL), CPN_INVALID); /* NULL err */
}

/* ---- the shared parser: one set of rules for every backend ---- */

static void test_url_generic(void **state) {
        struct cpn_url u;
        char v[64];

        (void)state;
        assert_int_equal(cpn_url_parse(&u, "x+y://us%40er:p%3Aw@[::1]:99/a%2Fb?k=v&s=%2Ft", NULL), 0);
        assert_string_equal(u.scheme, "x+y");
        assert_string_equal(u.user, "us@er");
        assert_true(u.has_password);
        assert_string_equal(u.password, "p:w");
        assert_string_equal(u.host, "::1");
        assert_int_equal(u.port, 99);
        assert_string_equal(u.path, "/a/b");
        assert_string_equal(u.query, "k=v&s=%2Ft");
        assert_int_equal(cpn_url_query_get(u.query, "s", v, sizeof(v)), 1);
        assert_string_equal(v, "/t");
        assert_int_equal(cpn_url_query_get(u.query, "k", v, sizeof(v)), 1);
        assert_string_equal(v, "v");
        assert_int_equal(cpn_url_query_get(u.query, "x", v, sizeof(v)), 0);
        assert_int_equal(cpn_url_parse(&u, "s://u@h", NULL), 0);
        assert_false(u.has_password);
        assert_int_equal(cpn_url_parse(&u, "s://u:@h", NULL), 0);
        assert_true(u.has_password);
        assert_string_equal(u.password, "");
        /* refused: no scheme, bad escapes, NUL, ports, IPv6 junk */
        const char *bad[] = { "h:1", "://h", "S://h", "s://%zz@h", "s://u:%0@h", "s://u:%00@h", "s://h:0",
                              "s://h:65536", "s://h:1a", "s://[::1", "s://[]:1", "s://[::1]x", "s://h/%4" };
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
                if (cpn_url_parse(&u, bad[i], NULL) != CPN_INVALID)
                        fail_msg("\"%s\" was accepted", bad[i]);
}

/* Redis and MySQL URLs now follow the same rules: percent escapes in the
 * credentials, a '#' is a character, IPv6 hosts in brackets. */
static void test_url_same_rules(void **state) {
        struct cpn_redis_url r;
        struct cpn_db_url d;

        (void)state;
        assert_int_equal(cpn_redis_url_parse(&r, "redis://al%69ce:p%25w%23@[::1]:7000/2", NULL), 0);
        assert_string_equal(r.user, "alice");
        assert_string_equal(r.password, "p%w#");
        assert_string_equal(r.host, "::1");
        assert_int_equal(r.port, 7000);
        assert_int_equal(r.db, 2);
        assert_int_equal(cpn_db_url_parse(&d, "mysql://al%69ce:p%25w%23@[::1]:7000/db", NULL), 0);
        assert_string_equal(d.user, "alice");
        assert_string_equal(d.password, "p%w#");
        assert_string_equal(d.host, "::1");
        assert_int_equal(d.port, 7000);
        assert_string_equal(d.database, "db");
        assert_int_equal(cpn_redis_url_parse(&r, "redis://:p%zz@h", NULL), CPN_INVALID);
        assert_int_equal(cpn_db_url_parse(&d, "mysql://u:p%zz@h/db", NULL), CPN_INVALID);
        assert_int_equal(cpn_redis_url_parse(&r, "redis://h/0?x=1", NULL), CPN_INVALID);
}

/* ---- listening addresses (cpn_url_listen_parse) ---- */

static void listen_ok(const char *s, const char *text, bool ipv6) {
        struct cpn_listen_addr a;
        struct cpn_error err = { { 0 } };
        int r = cpn_url_listen_parse(&a, s, &err);

        if (r != 0)
                fail_msg("listen \"%s\": %d (%s), expected 0", s, r, err.msg);
        assert_string_equal(a.text, text);
        assert_int_equal(a.ipv6, ipv6);
}

static void test_listen_ok(void **state) {
        struct cpn_listen_addr a;

        (void)state;
        listen_ok("127.0.0.1:9102", "127.0.0.1:9102", false);
        listen_ok("0.0.0.0:1", "0.0.0.0:1", false);
        listen_ok("10.1.2.3:65535", "10.1.2.3:65535", false);
        listen_ok("localhost:9102", "127.0.0.1:9102", false);
        listen_ok("[::1]:9102", "[::1]:9102", true);
        listen_ok("[::]:9102", "[::]:9102", true);
        /* written back in the kernel's form */
        listen_ok("[0:0:0:0:0:0:0:1]:80", "[::1]:80", true);
        listen_ok("127.0.0.1:09102", "127.0.0.1:9102", false);
        assert_int_equal(cpn_url_listen_parse(&a, "[fe80::1]:8080", NULL), 0);
        assert_string_equal(a.host, "fe80::1");
        assert_int_equal(a.port, 8080);
}

static void test_listen_bad(void **state) {
        static const char *const bad[] = {
                "", "9102", ":9102", "127.0.0.1", "127.0.0.1:", "127.0.0.1:0", "127.0.0.1:65536",
                "127.0.0.1:99999", "127.0.0.1:123456", "127.0.0.1:+80", "127.0.0.1:-1", "127.0.0.1:80 ",
                " 127.0.0.1:80", "127.0.0.1:80s", "127.0.0.1:8o", "example.com:80", "256.0.0.1:80",
                "1.2.3:80", "1.2.3.4.5:80", "::1:80", "[::1]", "[::1]80", "[::1]:", "[]:80", "[::1:80",
                "[127.0.0.1]:80", "[::g]:80", "http://127.0.0.1:80", "127.0.0.1:80/metrics",
                "127.0.0.1:80,127.0.0.1:81",
                "1234567890123456789012345678901234567890123456789012345678901234567890:80",
        };
        struct cpn_listen_addr a;
        struct cpn_error err;

        (void)state;
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                memset(&err, 0, sizeof(err));
                if (cpn_url_listen_parse(&a, bad[i], &err) != CPN_INVALID)
                        fail_msg("listen \"%s\" was accepted as %s", bad[i], a.text);
                if (!err.msg[0])
                        fail_msg("listen \"%s\": no message", bad[i]);
        }
        /* the message says what is wrong */
        assert_int_equal(cpn_url_listen_parse(&a, "9102", &err), CPN_INVALID);
        assert_non_null(strstr(err.msg, "host:port"));
        assert_int_equal(cpn_url_listen_parse(&a, "127.0.0.1:0", &err), CPN_INVALID);
        assert_non_null(strstr(err.msg, "1..65535"));
        assert_int_equal(cpn_url_listen_parse(&a, "example.com:80", &err), CPN_INVALID);
        assert_non_null(strstr(err.msg, "IPv4"));
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_redis_defaults),
                cmocka_unit_test(test_redis_credentials),
                cmocka_unit_test(test_redis_unix),
                cmocka_unit_test(test_redis_bad_port),
                cmocka_unit_test(test_redis_missing_host),
                cmocka_unit_test(test_redis_bad_db),
                cmocka_unit_test(test_redis_bad_scheme),
                cmocka_unit_test(test_redis_too_long),
                cmocka_unit_test(test_db_full),
                cmocka_unit_test(test_db_default_port),
                cmocka_unit_test(test_db_percent),
                cmocka_unit_test(test_db_socket),
                cmocka_unit_test(test_db_missing_database),
                cmocka_unit_test(test_db_bad_port),
                cmocka_unit_test(test_db_missing_host),
                cmocka_unit_test(test_db_bad_scheme),
                cmocka_unit_test(test_db_too_long),
                cmocka_unit_test(test_url_generic),
                cmocka_unit_test(test_url_same_rules),
                cmocka_unit_test(test_listen_ok),
                cmocka_unit_test(test_listen_bad),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
