/* The coupon product's domain types: phases, key names, and the JSON of its
 * requests, answers and Kafka messages, on the strict object of json.h. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "cpn/coupon/campaign.h"
#include "cpn/json.h"

enum cpn_campaign_phase cpn_campaign_phase(const struct cpn_campaign_state *st) {
        if (st->now_ms < st->c.starts_at_ms)
                return CPN_PHASE_SCHEDULED;
        if (st->now_ms >= st->c.ends_at_ms)
                return CPN_PHASE_ENDED;
        if (st->issued >= st->c.total)
                return CPN_PHASE_SOLD_OUT;
        return CPN_PHASE_OPEN;
}

const char *cpn_campaign_phase_name(enum cpn_campaign_phase p) {
        static const char *const names[] = { "scheduled", "open", "sold_out", "ended" };

        return names[p];
}

int cpn_campaign_key(char *buf, size_t n, const char *campaign_id, const char *part) {
        int r = snprintf(buf, n, "coupon:{%s}:%s", campaign_id, part);

        if (r < 0 || (size_t)r >= n)
                return -ENOBUFS;
        return r;
}

int cpn_campaign_parse_issue(const char *body, size_t n, char *user_id, struct cpn_error *err) {
        return cpn_json_user_body(body, n, user_id, err);
}

int cpn_campaign_parse(const char *body, size_t n, int64_t now_ms, struct cpn_campaign *out,
                       struct cpn_error *err) {
        static const char *const allowed[] = { "id", "name", "total", "starts_at", "ends_at", NULL };
        struct cpn_json o;
        const char *s;
        size_t len;
        int r;

        r = cpn_json_object(&o, body, n, allowed, err);
        if (r)
                return r;
        memset(out, 0, sizeof(*out));

        if (cpn_json_string(&o, "id", &s, &len) != 0 || !cpn_id_valid(s, len)) {
                r = cpn_error_set(err, CPN_INVALID, "\"id\" is required and must match [A-Za-z0-9_-]{1,64}");
                goto out;
        }
        memcpy(out->id, s, len + 1);

        if (cpn_json_string(&o, "name", &s, &len) != 0) {
                r = cpn_error_set(err, CPN_INVALID, "\"name\" is required and must be a string");
                goto out;
        }
        if (!cpn_name_valid(s, len)) {
                r = cpn_error_set(err, CPN_INVALID, "\"name\" must be 1..%d characters without control characters",
                                  CPN_NAME_MAX);
                goto out;
        }
        memcpy(out->name, s, len + 1);

        if (cpn_json_int(&o, "total", 1, CPN_TOTAL_MAX, &out->total) != 0) {
                r = cpn_error_set(err, CPN_INVALID, "\"total\" is required and must be an integer in 1..%lld",
                                  (long long)CPN_TOTAL_MAX);
                goto out;
        }

        r = cpn_json_time_or(&o, "starts_at", now_ms, &out->starts_at_ms, &out->starts_now, err);
        if (r)
                goto out;
        r = cpn_json_time_or(&o, "ends_at", CPN_TIME_NEVER, &out->ends_at_ms, NULL, err);
        if (r)
                goto out;
        if (out->ends_at_ms <= out->starts_at_ms)
                r = cpn_error_set(err, CPN_INVALID, "\"ends_at\" must be after \"starts_at\"");
out:
        cpn_json_clear(&o);
        return r;
}

int cpn_campaign_json(char *buf, size_t n, const struct cpn_campaign_state *st, int64_t persisted) {
        char name[CPN_NAME_MAX * 6 + 3], starts[40], ends[40], pers[24];
        int64_t remaining = st->c.total - st->issued;
        int r;

        if (cpn_json_quote(name, sizeof(name), st->c.name) < 0)
                return -ENOBUFS;
        if (persisted < 0)
                snprintf(pers, sizeof(pers), "null");
        else
                snprintf(pers, sizeof(pers), "%lld", (long long)persisted);
        r = snprintf(buf, n,
                     "{\"id\":\"%s\",\"name\":%s,\"total\":%lld,\"issued\":%lld,\"remaining\":%lld,"
                     "\"persisted\":%s,\"starts_at\":%s,\"ends_at\":%s,\"state\":\"%s\"}",
                     st->c.id, name, (long long)st->c.total, (long long)st->issued,
                     (long long)(remaining < 0 ? 0 : remaining), pers,
                     cpn_time_json(st->c.starts_at_ms, starts, sizeof(starts)),
                     cpn_time_json(st->c.ends_at_ms, ends, sizeof(ends)),
                     cpn_campaign_phase_name(cpn_campaign_phase(st)));
        if (r < 0 || (size_t)r >= n)
                return -ENOBUFS;
        return r;
}

int cpn_issuance_json(const struct cpn_issuance *iss, char *buf, size_t n) {
        char at[40];
        int r;

        /* Ids are validated to a grammar that needs no JSON escaping. */
        r = snprintf(buf, n, "{\"campaign_id\":\"%s\",\"user_id\":\"%s\",\"seq\":%lld,\"issued_at\":\"%s\"}",
                     iss->campaign_id, iss->user_id, (long long)iss->seq,
                     cpn_time_format(iss->issued_at_ms, at, sizeof(at)));
        if (r < 0 || (size_t)r >= n)
                return -ENOBUFS;
        return r;
}

int cpn_issuance_parse(const char *buf, size_t n, struct cpn_issuance *out, struct cpn_error *err) {
        const char *c = NULL, *u = NULL;
        size_t clen = 0, ulen = 0;
        bool c_ok, u_ok;
        struct cpn_json o;
        int r;

        memset(out, 0, sizeof(*out));
        /* A coupon message is under 300 bytes: one that is far larger is
         * poison, refused before any parse so that it costs no CPU either. */
        if (n > CPN_ISSUANCE_MAX)
                return cpn_error_set(err, CPN_INVALID, "message of %zu bytes; a coupon message is at most %d",
                                     n, CPN_ISSUANCE_MAX);
        /* Unknown members are tolerated: a newer coupon-api may add some. */
        r = cpn_json_object(&o, buf, n, NULL, err);
        if (r)
                return r;
        c_ok = cpn_json_string(&o, "campaign_id", &c, &clen) == 0 && cpn_id_valid(c, clen);
        u_ok = cpn_json_string(&o, "user_id", &u, &ulen) == 0 && cpn_user_id_valid(u, ulen);
        if (!c_ok)
                r = cpn_error_set(err, CPN_INVALID, "\"campaign_id\" missing or not [A-Za-z0-9_-]{1,64}");
        else if (!u_ok)
                r = cpn_error_set(err, CPN_INVALID, "\"user_id\" missing or not [A-Za-z0-9_.:-]{1,64}");
        else if (cpn_json_int(&o, "seq", 0, CPN_TOTAL_MAX, &out->seq) != 0)
                r = cpn_error_set(err, CPN_INVALID, "\"seq\" missing or not an integer in 0..%lld",
                                  (long long)CPN_TOTAL_MAX);
        else if (cpn_json_time(&o, "issued_at", &out->issued_at_ms) != 0)
                r = cpn_error_set(err, CPN_INVALID, "\"issued_at\" missing or not an RFC 3339 time");
        /* On failure too, keep what identifies the message for failed_events. */
        if (c_ok)
                memcpy(out->campaign_id, c, clen + 1);
        if (u_ok)
                memcpy(out->user_id, u, ulen + 1);
        if (r)
                out->seq = 0;
        cpn_json_clear(&o);
        return r;
}
