#pragma once
/*
 * Strict JSON objects on top of cJSON (which no other module sees). cJSON
 * alone accepts duplicate keys, "\u0000" inside strings (which it silently
 * truncates), invalid UTF-8, leading zeros and trailing garbage; these
 * checks refuse all of that, so a caller only ever sees a well-formed
 * object of known members, read through typed getters. The products'
 * parsers (a coupon's issue body, a ticket's payment body, ...) are built
 * on it and say what each member must be. Pure functions, any thread.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cpn/error.h"

/* Outcome of the getters (positive; see error.h for the ranges). */
enum {
        CPN_JSON_ABSENT = CPN_JSON_BASE, /* the member is absent or null */
        CPN_JSON_OTHER_USER,             /* the body names a user other than the caller */
};

/* A parsed object. The caller owns the struct (on its stack: no
 * allocation beyond cJSON's tree); the fields are the module's. The body
 * must outlive it. */
struct cpn_json {
        void *root;
        const char *body;
        size_t n;
        bool nonint; /* some number of the body has a fraction or an exponent */
};

/* Returns 0 if @s[0..n) is valid UTF-8 without overlongs or surrogates,
 * else -EINVAL. */
int cpn_utf8_check(const char *s, size_t n);

/*
 * Parses @body[0..n) as one JSON object: valid UTF-8, no NUL or raw control
 * character, no "\u0000", nesting at most 8 deep, nothing but white space
 * after it, no duplicate member, and when @known is not NULL (a NULL-ended
 * list of at most 32 names) no member outside it. Returns 0 with @o
 * filled (free it with cpn_json_clear), CPN_INVALID with the reason in
 * @err (fit for the client), or -ENOMEM.
 */
int cpn_json_object(struct cpn_json *o, const char *body, size_t n, const char *const *known,
                    struct cpn_error *err);
/* Frees the tree; @o may be cleared twice. */
void cpn_json_clear(struct cpn_json *o);

/* The member @name as a string: 0 with *@s (borrowed from @o, NUL-free)
 * and *@len (may be NULL), CPN_JSON_ABSENT, or CPN_INVALID (not a
 * string). */
int cpn_json_string(const struct cpn_json *o, const char *name, const char **s, size_t *len);
/* The member @name as an integer written without fraction or exponent, in
 * @min..@max (|bounds| < 2^53): 0, CPN_JSON_ABSENT or CPN_INVALID. */
int cpn_json_int(const struct cpn_json *o, const char *name, int64_t min, int64_t max, int64_t *out);
/* The member @name as an RFC 3339 time (types.h) in unix ms: 0,
 * CPN_JSON_ABSENT or CPN_INVALID. */
int cpn_json_time(const struct cpn_json *o, const char *name, int64_t *ms);

/* An optional time member: absent or null is @def (*@absent, may be NULL,
 * says which). Returns 0, or CPN_INVALID with a message fit for the
 * client in @err. */
int cpn_json_time_or(const struct cpn_json *o, const char *name, int64_t def, int64_t *ms, bool *absent,
                     struct cpn_error *err);

/* Whether @name is a member at all (null included). */
bool cpn_json_present(const struct cpn_json *o, const char *name);
/* Whether @name is the string @want or an array of strings holding it
 * (the form of a JWT's "aud"): 0, CPN_JSON_ABSENT, or CPN_INVALID (another
 * value, or not a string or an array of strings). */
int cpn_json_string_among(const struct cpn_json *o, const char *name, const char *want);

/* The body {"user_id":"..."} that both products' hot paths take (issue,
 * reserve): 0 with @user_id (CPN_ID_MAX + 1 bytes) or CPN_INVALID. */
int cpn_json_user_body(const char *body, size_t n, char *user_id, struct cpn_error *err);
/* The same for a request whose caller is known (@caller, the token's sub;
 * NULL: not known, as cpn_json_user_body): "user_id" may then be absent
 * (it is the caller) and must otherwise equal @caller, else
 * CPN_JSON_OTHER_USER. */
int cpn_json_user_body_as(const char *body, size_t n, const char *caller, char *user_id, struct cpn_error *err);

/* Writes a JSON string literal (quotes included) of @s into @buf, escaping
 * as RFC 8259 requires. Returns the length or -ENOBUFS. */
int cpn_json_quote(char *buf, size_t n, const char *s);
