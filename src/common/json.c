/*
 * Strict request bodies. A raw scan first refuses what cJSON would let
 * through (invalid UTF-8, raw control characters or NUL bytes, "\u0000",
 * non-integral number notation, nesting deeper than JSON_MAX_DEPTH), then
 * cJSON parses with trailing garbage refused, then the object is checked
 * member by member (no duplicates, no unknown members, exact types).
 */
#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cpn/json.h"
#include "cpn/types.h"

/* cJSON recurses once per nesting level and allows 1000 of them, but
 * civetweb's request threads have 100 KiB stacks (Debian's libcivetweb):
 * a 4 KiB body of '[' overflowed one and killed the process. Our bodies
 * nest one level (an object of scalars); the Kafka messages the worker
 * parses too. */
#define JSON_MAX_DEPTH 8

int cpn_utf8_check(const char *s, size_t n) {
        const unsigned char *p = (const unsigned char *)s, *end = p + n;

        while (p < end) {
                unsigned c = *p;
                size_t len;
                unsigned cp;

                if (c < 0x80) {
                        p++;
                        continue;
                } else if (c >= 0xc2 && c <= 0xdf) {
                        len = 2;
                        cp = c & 0x1f;
                } else if (c >= 0xe0 && c <= 0xef) {
                        len = 3;
                        cp = c & 0x0f;
                } else if (c >= 0xf0 && c <= 0xf4) {
                        len = 4;
                        cp = c & 0x07;
                } else {
                        return -EINVAL;
                }
                if ((size_t)(end - p) < len)
                        return -EINVAL;
                for (size_t i = 1; i < len; i++) {
                        if ((p[i] & 0xc0) != 0x80)
                                return -EINVAL;
                        cp = (cp << 6) | (p[i] & 0x3f);
                }
                if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
                    (cp >= 0xd800 && cp <= 0xdfff))
                        return -EINVAL;
                p += len;
        }
        return 0;
}

/* The raw scan. Sets *nonint when a number uses a fraction or exponent. */
static int scan(const char *s, size_t n, bool *nonint, struct cpn_error *err) {
        bool in_str = false;
        int depth = 0;

        *nonint = false;
        if (cpn_utf8_check(s, n) < 0)
                return cpn_error_set(err, CPN_INVALID, "body is not valid UTF-8");
        for (size_t i = 0; i < n; i++) {
                unsigned char c = (unsigned char)s[i];

                if (c == '\0')
                        return cpn_error_set(err, CPN_INVALID, "body contains a NUL byte");
                if (in_str) {
                        if (c < 0x20)
                                return cpn_error_set(err, CPN_INVALID,
                                                     "unescaped control character in a string");
                        if (c == '"') {
                                in_str = false;
                        } else if (c == '\\') {
                                if (i + 1 >= n)
                                        return cpn_error_set(err, CPN_INVALID, "truncated escape");
                                if (s[i + 1] == 'u') {
                                        int v = 0;

                                        if (i + 5 >= n)
                                                return cpn_error_set(err, CPN_INVALID, "truncated \\u escape");
                                        for (int k = 2; k < 6; k++) {
                                                int h = cpn_hex_value(s[i + k]);

                                                if (h < 0)
                                                        return cpn_error_set(err, CPN_INVALID,
                                                                             "bad \\u escape");
                                                v = v * 16 + h;
                                        }
                                        if (v == 0)
                                                return cpn_error_set(err, CPN_INVALID,
                                                                     "\\u0000 is not allowed in strings");
                                        i += 5;
                                } else {
                                        i++;
                                }
                        }
                        continue;
                }
                if (c == '"') {
                        in_str = true;
                } else if (c == '[' || c == '{') {
                        if (++depth > JSON_MAX_DEPTH)
                                return cpn_error_set(err, CPN_INVALID, "JSON nested deeper than %d levels",
                                                     JSON_MAX_DEPTH);
                } else if (c == ']' || c == '}') {
                        depth--;
                } else if (c == '-' || (c >= '0' && c <= '9')) {
                        /* A number token: note a fraction or an exponent. */
                        size_t j = i, d = c == '-' ? i + 1 : i;

                        /* RFC 8259: no leading zeros ("010"), which cJSON takes. */
                        if (d + 1 < n && s[d] == '0' && s[d + 1] >= '0' && s[d + 1] <= '9')
                                return cpn_error_set(err, CPN_INVALID, "numbers must not have leading zeros");
                        while (j < n && strchr("0123456789.eE+-", s[j]) && s[j]) {
                                if (s[j] == '.' || s[j] == 'e' || s[j] == 'E')
                                        *nonint = true;
                                j++;
                        }
                        i = j - 1;
                }
        }
        return 0;
}

/* The length of the longest prefix of @s of at most @max bytes that ends
 * on a character boundary: a message quoting a member name goes into a
 * JSON answer or a failed_events row, so it must stay valid UTF-8. @s is
 * valid UTF-8 (scan() checked the raw body, cJSON decodes escapes to it). */
static int utf8_prefix(const char *s, size_t max) {
        size_t n = strnlen(s, max + 1);

        if (n <= max)
                return (int)n;
        for (n = max; n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80; n--)
                ;
        return (int)n;
}

static int str_ptr_cmp(const void *a, const void *b) {
        return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The first name that @root's members share, or NULL: sorted, so that a
 * message of many members costs m log m comparisons, not m^2. */
static const char *duplicate_name(cJSON *root, int *r) {
        const char **names;
        const char *dup = NULL;
        size_t m = 0, i = 0;

        *r = 0;
        for (cJSON *it = root->child; it; it = it->next)
                m++;
        if (m < 2)
                return NULL;
        names = malloc(m * sizeof(*names));
        if (!names) {
                *r = -ENOMEM;
                return NULL;
        }
        for (cJSON *it = root->child; it; it = it->next)
                names[i++] = it->string;
        qsort(names, m, sizeof(*names), str_ptr_cmp);
        for (i = 1; i < m && !dup; i++)
                if (strcmp(names[i - 1], names[i]) == 0)
                        dup = names[i];
        free(names);
        return dup;
}

/* Parses the object and refuses duplicate members, and members other than
 * @known (a NULL-ended list of at most 32 names) unless @known is NULL. */
static int parse_object(const char *body, size_t n, const char *const *known, cJSON **ret, bool *nonint,
                        struct cpn_error *err) {
        const char *end = NULL;
        uint32_t seen = 0;
        cJSON *root, *it;
        int r;

        if (n == 0)
                return cpn_error_set(err, CPN_INVALID, "empty body; expected a JSON object");
        r = scan(body, n, nonint, err);
        if (r)
                return r;
        root = cJSON_ParseWithLengthOpts(body, n, &end, false);
        if (!root)
                return cpn_error_set(err, CPN_INVALID, "malformed JSON near byte %zu",
                                     end && end >= body ? (size_t)(end - body) : (size_t)0);
        /* Only white space may follow the value. */
        while (end < body + n && (*end == ' ' || *end == '\t' || *end == '\n' || *end == '\r'))
                end++;
        if (end != body + n) {
                cJSON_Delete(root);
                return cpn_error_set(err, CPN_INVALID, "unexpected data after the JSON value at byte %zu",
                                     (size_t)(end - body));
        }
        if (!cJSON_IsObject(root)) {
                cJSON_Delete(root);
                return cpn_error_set(err, CPN_INVALID, "expected a JSON object");
        }
        if (!known) {
                const char *dup = duplicate_name(root, &r);

                if (dup || r) {
                        r = r ? cpn_error_set(err, r, "out of memory")
                              : cpn_error_set(err, CPN_INVALID, "duplicate member \"%.*s\"", utf8_prefix(dup, 64),
                                              dup);
                        cJSON_Delete(root);
                        return r;
                }
        }
        for (it = root->child; it && known; it = it->next) {
                int k = 0;

                while (known[k] && strcmp(known[k], it->string) != 0)
                        k++;
                /* Message first: it->string dies with the tree. */
                if (!known[k])
                        cpn_error_set(err, CPN_INVALID, "unknown member \"%.*s\"", utf8_prefix(it->string, 64),
                                      it->string);
                else if (seen & (1u << k))
                        cpn_error_set(err, CPN_INVALID, "duplicate member \"%.*s\"", utf8_prefix(it->string, 64),
                                      it->string);
                if (!known[k] || (seen & (1u << k))) {
                        cJSON_Delete(root);
                        return CPN_INVALID;
                }
                seen |= 1u << k;
        }
        *ret = root;
        return 0;
}

int cpn_json_quote(char *buf, size_t n, const char *s) {
        static const char hex[] = "0123456789abcdef";
        size_t o = 0;

#define PUT(ch) do { if (o + 1 >= n) return -ENOBUFS; buf[o++] = (ch); } while (0)
        PUT('"');
        for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
                switch (*p) {
                case '"': PUT('\\'); PUT('"'); break;
                case '\\': PUT('\\'); PUT('\\'); break;
                case '\n': PUT('\\'); PUT('n'); break;
                case '\r': PUT('\\'); PUT('r'); break;
                case '\t': PUT('\\'); PUT('t'); break;
                default:
                        if (*p < 0x20) {
                                PUT('\\'); PUT('u'); PUT('0'); PUT('0');
                                PUT(hex[*p >> 4]); PUT(hex[*p & 15]);
                        } else {
                                PUT((char)*p);
                        }
                }
        }
        PUT('"');
#undef PUT
        buf[o] = '\0';
        return (int)o;
}

/* Counts in *@k the numbers that come before @target in document order
 * (cJSON keeps members and elements in text order). True once found. */
static bool number_index(const cJSON *node, const cJSON *target, size_t *k) {
        for (const cJSON *it = node->child; it; it = it->next) {
                if (it == target)
                        return true;
                if (cJSON_IsNumber(it))
                        (*k)++;
                else if (number_index(it, target, k))
                        return true;
        }
        return false;
}

/* Whether the number @item of the tree @root parsed from @s (which passed
 * scan()) is written with a fraction or an exponent. scan()'s flag covers
 * the whole body; this looks at one number, found by its rank in the text. */
static bool number_nonint(const cJSON *root, const cJSON *item, const char *s, size_t n) {
        bool in_str = false;
        size_t k = 0;

        number_index(root, item, &k);
        for (size_t i = 0; i < n; i++) {
                if (in_str) {
                        if (s[i] == '\\')
                                i++;
                        else if (s[i] == '"')
                                in_str = false;
                } else if (s[i] == '"') {
                        in_str = true;
                } else if (s[i] == '-' || (s[i] >= '0' && s[i] <= '9')) {
                        bool frac = false;

                        for (; i < n && s[i] && strchr("0123456789.eE+-", s[i]); i++)
                                if (s[i] == '.' || s[i] == 'e' || s[i] == 'E')
                                        frac = true;
                        if (k-- == 0)
                                return frac;
                        i--;
                }
        }
        return true;
}


int cpn_json_object(struct cpn_json *o, const char *body, size_t n, const char *const *known,
                    struct cpn_error *err) {
        cJSON *root = NULL;
        int r;

        memset(o, 0, sizeof(*o));
        r = parse_object(body, n, known, &root, &o->nonint, err);
        if (r)
                return r;
        o->root = root;
        o->body = body;
        o->n = n;
        return 0;
}

void cpn_json_clear(struct cpn_json *o) {
        cJSON_Delete(o->root);
        o->root = NULL;
}

static const cJSON *member(const struct cpn_json *o, const char *name) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive((const cJSON *)o->root, name);

        return v && !cJSON_IsNull(v) ? v : NULL;
}

int cpn_json_string(const struct cpn_json *o, const char *name, const char **s, size_t *len) {
        const cJSON *v = member(o, name);

        if (!v)
                return CPN_JSON_ABSENT;
        if (!cJSON_IsString(v))
                return CPN_INVALID;
        *s = v->valuestring;
        if (len)
                *len = strlen(v->valuestring);
        return 0;
}

int cpn_json_int(const struct cpn_json *o, const char *name, int64_t min, int64_t max, int64_t *out) {
        const cJSON *v = member(o, name);

        if (!v)
                return CPN_JSON_ABSENT;
        /* Bounds below 2^53 keep every integer exact as a double. */
        if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble) || v->valuedouble != floor(v->valuedouble) ||
            v->valuedouble < (double)min || v->valuedouble > (double)max ||
            (o->nonint && number_nonint((const cJSON *)o->root, v, o->body, o->n)))
                return CPN_INVALID;
        *out = (int64_t)v->valuedouble;
        return 0;
}

int cpn_json_time(const struct cpn_json *o, const char *name, int64_t *ms) {
        const cJSON *v = member(o, name);

        if (!v)
                return CPN_JSON_ABSENT;
        if (!cJSON_IsString(v) || cpn_time_parse(v->valuestring, ms) < 0)
                return CPN_INVALID;
        return 0;
}

int cpn_json_time_or(const struct cpn_json *o, const char *name, int64_t def, int64_t *ms, bool *absent,
                     struct cpn_error *err) {
        int r = cpn_json_time(o, name, ms);

        if (absent)
                *absent = r == CPN_JSON_ABSENT;
        if (r == CPN_JSON_ABSENT) {
                *ms = def;
                return 0;
        }
        if (r)
                return cpn_error_set(err, CPN_INVALID,
                                     "\"%s\" must be an RFC 3339 time such as 2026-11-21T10:00:00Z", name);
        return 0;
}

bool cpn_json_present(const struct cpn_json *o, const char *name) {
        return cJSON_GetObjectItemCaseSensitive((const cJSON *)o->root, name) != NULL;
}

int cpn_json_string_among(const struct cpn_json *o, const char *name, const char *want) {
        const cJSON *v = member(o, name), *e;
        bool found = false;

        if (!v)
                return CPN_JSON_ABSENT;
        if (cJSON_IsString(v))
                return strcmp(v->valuestring, want) == 0 ? 0 : CPN_INVALID;
        if (!cJSON_IsArray(v))
                return CPN_INVALID;
        cJSON_ArrayForEach(e, v) {
                if (!cJSON_IsString(e))
                        return CPN_INVALID;
                if (strcmp(e->valuestring, want) == 0)
                        found = true;
        }
        return found ? 0 : CPN_INVALID;
}

int cpn_json_user_body_as(const char *body, size_t n, const char *caller, char *user_id, struct cpn_error *err) {
        static const char *const allowed[] = { "user_id", NULL };
        struct cpn_json o;
        const char *u;
        size_t len;
        int r;

        r = cpn_json_object(&o, body, n, allowed, err);
        if (r)
                return r;
        r = cpn_json_string(&o, "user_id", &u, &len);
        if (r == CPN_JSON_ABSENT && caller) {
                u = caller;
                len = strlen(caller);
                r = 0;
        }
        if (r != 0)
                r = cpn_error_set(err, CPN_INVALID, "\"user_id\" is required and must be a string");
        else if (!cpn_user_id_valid(u, len))
                r = cpn_error_set(err, CPN_INVALID, "\"user_id\" must match [A-Za-z0-9_.:-]{1,64}");
        else if (caller && strcmp(u, caller) != 0)
                r = cpn_error_set(err, CPN_JSON_OTHER_USER, "\"user_id\" is not the caller's (the token's sub)");
        else
                memcpy(user_id, u, len + 1);
        cpn_json_clear(&o);
        return r;
}

int cpn_json_user_body(const char *body, size_t n, char *user_id, struct cpn_error *err) {
        return cpn_json_user_body_as(body, n, NULL, user_id, err);
}
