/* The ticket product's Redis gate: its scripts' calls (lua/ticket/). */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "ticket-internal.h"

#define KEY(var, type, part)                                                   \
        char var[CPN_ID_MAX + 32];                                             \
        if (cpn_ticket_key(var, sizeof(var), type, part) < 0)                  \
                return cpn_error_set(err, -EINVAL, "ticket type id too long")

int cpn_gate_type_set(struct cpn_redis *r, const struct cpn_ticket_type *t, bool *created, struct cpn_error *err) {
        struct cpn_redis_answer a;
        char total[24], starts[24], ends[24], hold[24];
        int ret;
        KEY(meta, t->id, "meta");

        snprintf(total, sizeof(total), "%lld", (long long)t->total);
        snprintf(starts, sizeof(starts), "%lld", (long long)t->starts_at_ms);
        snprintf(ends, sizeof(ends), "%lld", t->ends_at_ms == CPN_TIME_NEVER ? 0LL : (long long)t->ends_at_ms);
        snprintf(hold, sizeof(hold), "%lld", (long long)t->hold_s * 1000);
        ret = cpn_redis_script(r, "type_set.lua", true, 1, 4, (const char *[]){ meta, total, starts, ends, hold }, &a,
                               NULL, err);
        if (ret)
                return ret;
        if (a.n != 1 || a.v[0].type != CPN_RV_INT)
                return cpn_error_set(err, -EPROTO, "type_set.lua: unexpected answer");
        *created = a.v[0].i == 1;
        return 0;
}

struct reserve_reply {
        enum cpn_gate_answer *ans;
        char *held, *why;
        int64_t *age_ms;
        struct cpn_error *err;
};

/* On the pipe's thread: copies the script's answer out. */
static int reserve_answer(const struct cpn_redis_item *v, size_t n, void *ud) {
        static const struct {
                const char *word;
                enum cpn_gate_answer ans;
        } words[] = { { "ok", CPN_GATE_OK },
                      { "held", CPN_GATE_HELD },
                      { "sold_out", CPN_GATE_SOLD_OUT },
                      { "not_open", CPN_GATE_NOT_OPEN },
                      { "not_found", CPN_GATE_NO_TYPE } };
        struct reserve_reply *x = ud;

        if (n < 1 || v[0].type != CPN_RV_STR)
                return cpn_error_set(x->err, -EPROTO, "reserve.lua: unexpected answer");
        for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++) {
                if (strcmp(v[0].s, words[i].word) != 0)
                        continue;
                *x->ans = words[i].ans;
                if (*x->ans == CPN_GATE_OK || *x->ans == CPN_GATE_HELD) {
                        if (n < 2 || v[1].type != CPN_RV_STR || v[1].len != CPN_TICKET_ID_LEN)
                                return cpn_error_set(x->err, -EPROTO, "reserve.lua: no ticket id");
                        memcpy(x->held, v[1].s, CPN_TICKET_ID_LEN + 1);
                        if (n >= 3 && v[2].type == CPN_RV_INT)
                                *x->age_ms = v[2].i;
                } else if (*x->ans == CPN_GATE_NOT_OPEN && n >= 2 && v[1].type == CPN_RV_STR) {
                        snprintf(x->why, 16, "%.15s", v[1].s);
                }
                return 0;
        }
        return cpn_error_set(x->err, -EPROTO, "reserve.lua: unexpected answer %.64s", v[0].s);
}

int cpn_gate_reserve(struct cpn_redis_pipe *p, const char *type_id, const char *user_id, const char *new_id,
                     enum cpn_gate_answer *ans, char held[CPN_TICKET_ID_LEN + 1], int64_t *age_ms, char why[16],
                     struct cpn_error *err) {
        struct reserve_reply x = { ans, held, why, age_ms, err };
        KEY(meta, type_id, "meta");
        KEY(users, type_id, "users");

        held[0] = why[0] = '\0';
        *age_ms = 0;
        /* Safe to repeat: a second run finds the hold the first recorded. */
        return cpn_redis_pipe_call(p, "reserve.lua", 2, 2, (const char *[]){ meta, users, user_id, new_id }, true,
                                   reserve_answer, &x, err);
}

int cpn_gate_release(struct cpn_redis *r, const char *type_id, const char *user_id, const char *ticket_id,
                     bool *released, struct cpn_error *err) {
        struct cpn_redis_answer a;
        int ret;
        KEY(users, type_id, "users");

        ret = cpn_redis_script(r, "release.lua", true, 1, 2, (const char *[]){ users, user_id, ticket_id }, &a, NULL,
                               err);
        if (ret)
                return ret;
        if (released)
                *released = a.n == 1 && a.v[0].i == 1;
        return 0;
}
