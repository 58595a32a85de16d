/* The ticket product's domain types and their JSON (ticket.h). */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "cpn/json.h"
#include "cpn/ticket/ticket.h"

enum cpn_ticket_phase cpn_ticket_type_phase(const struct cpn_ticket_type_state *st) {
        if (st->now_ms < st->t.starts_at_ms)
                return CPN_TICKET_SCHEDULED;
        if (st->now_ms >= st->t.ends_at_ms)
                return CPN_TICKET_ENDED;
        if (st->held + st->sold >= st->t.total)
                return CPN_TICKET_SOLD_OUT_PHASE;
        return CPN_TICKET_OPEN;
}

const char *cpn_ticket_phase_name(enum cpn_ticket_phase p) {
        static const char *const names[] = { "scheduled", "open", "sold_out", "ended" };

        return (unsigned)p < 4 ? names[p] : "ended";
}

static const char *const status_names[_CPN_TS_N] = { "PENDING", "PAID", "CONFIRMED",
                                                     "EXPIRED", "CANCELLED", "REFUNDED" };

const char *cpn_ticket_status_name(enum cpn_ticket_status s) {
        return (unsigned)s < _CPN_TS_N ? status_names[s] : "UNKNOWN";
}

int cpn_ticket_status_parse(const char *name) {
        for (int i = 0; i < _CPN_TS_N; i++)
                if (strcmp(status_names[i], name) == 0)
                        return i;
        return -1;
}

int cpn_ticket_key(char *buf, size_t n, const char *type_id, const char *part) {
        int r = snprintf(buf, n, "ticket:{%s}:%s", type_id, part);

        if (r < 0 || (size_t)r >= n)
                return -ENOBUFS;
        return r;
}

bool cpn_currency_valid(const char *s, size_t len) {
        if (len != 3)
                return false;
        for (size_t i = 0; i < 3; i++)
                if (s[i] < 'A' || s[i] > 'Z')
                        return false;
        return true;
}

bool cpn_payment_key_valid(const char *s, size_t len) {
        if (len < 1 || len > CPN_PAYMENT_KEY_MAX)
                return false;
        for (size_t i = 0; i < len; i++) {
                char c = s[i];

                if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
                      c == '.' || c == ':' || c == '-'))
                        return false;
        }
        return true;
}

int cpn_ticket_type_parse(const char *body, size_t n, int64_t now_ms, struct cpn_ticket_type *out,
                          struct cpn_error *err) {
        static const char *const allowed[] = { "id",           "name",      "price",   "currency", "total",
                                               "hold_seconds", "starts_at", "ends_at", NULL };
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
        if (cpn_json_int(&o, "price", 0, CPN_PRICE_MAX, &out->price) != 0) {
                r = cpn_error_set(err, CPN_INVALID,
                                  "\"price\" is required and must be an integer in 0..%lld (the currency's minor unit)",
                                  (long long)CPN_PRICE_MAX);
                goto out;
        }
        if (cpn_json_string(&o, "currency", &s, &len) != 0 || !cpn_currency_valid(s, len)) {
                r = cpn_error_set(err, CPN_INVALID,
                                  "\"currency\" is required and must be an ISO 4217 code such as \"KRW\"");
                goto out;
        }
        memcpy(out->currency, s, 4);
        if (cpn_json_int(&o, "total", 1, CPN_TICKET_TOTAL_MAX, &out->total) != 0) {
                r = cpn_error_set(err, CPN_INVALID, "\"total\" is required and must be an integer in 1..%lld",
                                  (long long)CPN_TICKET_TOTAL_MAX);
                goto out;
        }
        r = cpn_json_int(&o, "hold_seconds", CPN_HOLD_MIN_S, CPN_HOLD_MAX_S, &out->hold_s);
        if (r == CPN_JSON_ABSENT) {
                out->hold_s = CPN_HOLD_DEFAULT_S;
                r = 0;
        } else if (r) {
                r = cpn_error_set(err, CPN_INVALID, "\"hold_seconds\" must be an integer in %d..%d",
                                  CPN_HOLD_MIN_S, CPN_HOLD_MAX_S);
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

bool cpn_ticket_type_same(const struct cpn_ticket_type *stored, const struct cpn_ticket_type *c) {
        return strcmp(stored->name, c->name) == 0 && stored->price == c->price &&
               strcmp(stored->currency, c->currency) == 0 && stored->total == c->total &&
               stored->hold_s == c->hold_s && stored->ends_at_ms == c->ends_at_ms &&
               (c->starts_now || stored->starts_at_ms == c->starts_at_ms);
}

int cpn_ticket_type_json(char *buf, size_t n, const struct cpn_ticket_type_state *st) {
        char name[CPN_NAME_MAX * 6 + 3], starts[40], ends[40];
        int64_t available = st->t.total - st->held - st->sold;
        int r;

        if (cpn_json_quote(name, sizeof(name), st->t.name) < 0)
                return -ENOBUFS;
        r = snprintf(buf, n,
                     "{\"id\":\"%s\",\"name\":%s,\"price\":%lld,\"currency\":\"%s\",\"total\":%lld,"
                     "\"held\":%lld,\"sold\":%lld,\"available\":%lld,\"hold_seconds\":%lld,"
                     "\"starts_at\":%s,\"ends_at\":%s,\"state\":\"%s\"}",
                     st->t.id, name, (long long)st->t.price, st->t.currency, (long long)st->t.total,
                     (long long)st->held, (long long)st->sold, (long long)(available < 0 ? 0 : available),
                     (long long)st->t.hold_s, cpn_time_json(st->t.starts_at_ms, starts, sizeof(starts)),
                     cpn_time_json(st->t.ends_at_ms, ends, sizeof(ends)),
                     cpn_ticket_phase_name(cpn_ticket_type_phase(st)));
        if (r < 0 || (size_t)r >= n)
                return -ENOBUFS;
        return r;
}

int cpn_ticket_parse_reserve(const char *body, size_t n, char *user_id, struct cpn_error *err) {
        return cpn_json_user_body(body, n, user_id, err);
}

int cpn_ticket_parse_payment(const char *body, size_t n, char *key, int64_t *amount, struct cpn_error *err) {
        static const char *const allowed[] = { "payment_key", "amount", NULL };
        struct cpn_json o;
        const char *k;
        size_t len;
        int r;

        r = cpn_json_object(&o, body, n, allowed, err);
        if (r)
                return r;
        if (cpn_json_string(&o, "payment_key", &k, &len) != 0 || !cpn_payment_key_valid(k, len))
                r = cpn_error_set(err, CPN_INVALID,
                                  "\"payment_key\" is required and must be 1..%d characters of [A-Za-z0-9_.:-]",
                                  CPN_PAYMENT_KEY_MAX);
        else if (cpn_json_int(&o, "amount", 0, CPN_PRICE_MAX, amount) != 0)
                r = cpn_error_set(err, CPN_INVALID, "\"amount\" is required and must be an integer in 0..%lld",
                                  (long long)CPN_PRICE_MAX);
        else
                memcpy(key, k, len + 1);
        cpn_json_clear(&o);
        return r;
}

int cpn_ticket_json(char *buf, size_t n, const struct cpn_ticket *t) {
        char exp[40], paid[40], conf[40];
        int r;

        /* Ids and currency are validated to grammars that need no escaping. */
        r = snprintf(buf, n,
                     "{\"ticket_id\":\"%s\",\"ticket_type_id\":\"%s\",\"user_id\":\"%s\",\"status\":\"%s\","
                     "\"price\":%lld,\"currency\":\"%s\",\"expires_at\":%s,\"paid_at\":%s,\"confirmed_at\":%s}",
                     t->id, t->type_id, t->user_id, cpn_ticket_status_name(t->status), (long long)t->price,
                     t->currency, cpn_time_json(t->expires_at_ms, exp, sizeof(exp)),
                     cpn_time_json(t->paid_at_ms, paid, sizeof(paid)),
                     cpn_time_json(t->confirmed_at_ms, conf, sizeof(conf)));
        if (r < 0 || (size_t)r >= n)
                return -ENOBUFS;
        return r;
}

/* A string member of @o in a grammar, copied into @out (@cap bytes). */
static bool take(const struct cpn_json *o, const char *name, bool (*valid)(const char *, size_t), char *out,
                 size_t cap) {
        const char *s;
        size_t len;

        if (cpn_json_string(o, name, &s, &len) != 0 || len >= cap || !valid(s, len))
                return false;
        memcpy(out, s, len + 1);
        return true;
}

int cpn_ticket_event_parse(const char *buf, size_t n, struct cpn_ticket_event *out, struct cpn_error *err) {
        struct cpn_json o;
        const char *type;
        int64_t v;
        int r;

        memset(out, 0, sizeof(*out));
        if (n > CPN_TICKET_EVENT_MAX)
                return cpn_error_set(err, CPN_INVALID, "message of %zu bytes; a ticket.paid event is at most %d", n,
                                     CPN_TICKET_EVENT_MAX);
        r = cpn_json_object(&o, buf, n, NULL, err);
        if (r)
                return r;
        if (cpn_json_int(&o, "v", 1, 1, &v) != 0)
                r = cpn_error_set(err, CPN_INVALID, "\"v\" missing or not 1");
        else if (cpn_json_string(&o, "type", &type, NULL) != 0 || strcmp(type, "ticket.paid") != 0)
                r = cpn_error_set(err, CPN_INVALID, "\"type\" missing or not \"ticket.paid\"");
        else if (!take(&o, "event_id", cpn_uuid_valid, out->event_id, sizeof(out->event_id)))
                r = cpn_error_set(err, CPN_INVALID, "\"event_id\" missing or not a UUID");
        else if (!take(&o, "ticket_id", cpn_uuid_valid, out->ticket_id, sizeof(out->ticket_id)))
                r = cpn_error_set(err, CPN_INVALID, "\"ticket_id\" missing or not a UUID");
        else if (!take(&o, "ticket_type_id", cpn_id_valid, out->type_id, sizeof(out->type_id)))
                r = cpn_error_set(err, CPN_INVALID, "\"ticket_type_id\" missing or not [A-Za-z0-9_-]{1,64}");
        else if (!take(&o, "user_id", cpn_user_id_valid, out->user_id, sizeof(out->user_id)))
                r = cpn_error_set(err, CPN_INVALID, "\"user_id\" missing or not [A-Za-z0-9_.:-]{1,64}");
        else if (cpn_json_int(&o, "amount", 0, CPN_PRICE_MAX, &out->amount) != 0)
                r = cpn_error_set(err, CPN_INVALID, "\"amount\" missing or not an integer in 0..%lld",
                                  (long long)CPN_PRICE_MAX);
        else if (!take(&o, "currency", cpn_currency_valid, out->currency, sizeof(out->currency)))
                r = cpn_error_set(err, CPN_INVALID, "\"currency\" missing or not an ISO 4217 code");
        else if (!take(&o, "payment_key", cpn_payment_key_valid, out->payment_key, sizeof(out->payment_key)))
                r = cpn_error_set(err, CPN_INVALID, "\"payment_key\" missing or not a payment key");
        else if (cpn_json_time(&o, "paid_at", &out->paid_at_ms) != 0)
                r = cpn_error_set(err, CPN_INVALID, "\"paid_at\" missing or not an RFC 3339 time");
        cpn_json_clear(&o);
        return r;
}
