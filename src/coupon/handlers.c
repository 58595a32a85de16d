/*
 * The coupon product's routes: parse and validate (pure functions of
 * campaign.c), make one domain call, map its result through the product's
 * rows of the outcome table. Answers are formatted into the thread's
 * buffer; nothing here allocates except cJSON's parse of a request body.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cpn/coupon/store.h"
#include "cpn/error.h"
#include "cpn/http.h"
#include "cpn/json.h"
#include "cpn/log.h"
#include "cpn/coupon/http.h"

/* The coupon product's rows of the outcome -> answer table. */
static const struct cpn_api_error_info
        already_issued = { 409, "already_issued", "this user already has this campaign's coupon", 0 },
        sold_out = { 410, "sold_out", "all coupons of this campaign are gone", 0 },
        not_open = { 403, "not_open", "the campaign is not open", 0 },
        campaign_not_found = { 404, "campaign_not_found", "no such campaign", 0 },
        campaign_exists = { 409, "campaign_exists", "a campaign with this id exists", 0 },
        paused = { 503, "unavailable", "the campaign is paused for maintenance", 5 };

/* Not in the contract's table, which assumes every answer is known: the
 * script went out and Redis was lost before it answered. 503 would promise
 * that nothing was issued. */
const struct cpn_api_error_info cpn_coupon_outcome_unknown = {
        504, "outcome_unknown",
        "Redis was lost while deciding; the coupon may or may not have been issued: retry with the same "
        "user_id (202 or 409 tells which)",
        1
};

const struct cpn_api_error_info *cpn_coupon_answer(int r) {
        switch (r) {
        case CPN_ISSUE_DUPLICATE: return &already_issued;
        case CPN_ISSUE_SOLD_OUT: return &sold_out;
        case CPN_ISSUE_NOT_OPEN: return &not_open;
        case CPN_ISSUE_PAUSED: return &paused;
        case CPN_CAMPAIGN_NOT_FOUND: return &campaign_not_found;
        case CPN_CAMPAIGN_EXISTS:
        case CPN_CAMPAIGN_SAME: return &campaign_exists;
        case CPN_CAMPAIGN_PARTIAL: return cpn_api_error_info(CPN_E_UNAVAILABLE);
        case CPN_UNKNOWN: return &cpn_coupon_outcome_unknown;
        default: return NULL;
        }
}

/* A domain call's non-zero result becomes its answer. */
static void fail(struct cpn_response *rs, int r, const struct cpn_error *err) {
        const struct cpn_api_error_info *info = cpn_coupon_answer(r);

        if (!info)
                info = cpn_api_error_info(cpn_api_error_from_code(r));
        if (info == &not_open || info == cpn_api_error_info(CPN_E_INVALID_REQUEST))
                cpn_response_answer(rs, info, err->msg[0] ? err->msg : NULL);
        else
                cpn_response_answer(rs, info, NULL);
        if (rs->status >= 500)
                rs->detail = *err;
}

/* A worker thread's state: its session (Redis connection, delivery waiter). */
struct coupon_thread {
        struct cpn_coupon_http *ch;
        struct cpn_session *session; /* owned; NULL without a service */
};

static enum cpn_coupon_outcome outcome_of(int r) {
        switch (r) {
        case 0: return CPN_OUTCOME_ISSUED;
        case CPN_ISSUE_DUPLICATE: return CPN_OUTCOME_ALREADY_ISSUED;
        case CPN_ISSUE_SOLD_OUT: return CPN_OUTCOME_SOLD_OUT;
        case CPN_ISSUE_NOT_OPEN: return CPN_OUTCOME_NOT_OPEN;
        case CPN_CAMPAIGN_NOT_FOUND: return CPN_OUTCOME_NOT_FOUND;
        case CPN_ISSUE_PAUSED: return CPN_OUTCOME_PAUSED;
        case CPN_UNKNOWN: return CPN_OUTCOME_UNKNOWN;
        default: return CPN_OUTCOME_UNAVAILABLE;
        }
}

static void count(_Atomic uint64_t *c) {
        atomic_fetch_add_explicit(c, 1, memory_order_relaxed);
}

static void handle_issue(void *thread, const struct cpn_request *rq, struct cpn_response *rs) {
        struct coupon_thread *h = thread;
        struct cpn_error err = { { 0 } };
        struct cpn_issuance iss;
        char user[CPN_ID_MAX + 1];
        int r, delivery = 0;

        if (!cpn_http_json_type(rq->content_type)) {
                cpn_response_error(rs, CPN_E_UNSUPPORTED_MEDIA_TYPE, NULL);
                return;
        }
        if (cpn_http_user_body(rq, rs, user) != 0) {
                count(&h->ch->outcomes[CPN_OUTCOME_INVALID]);
                return;
        }
        r = cpn_service_issue(h->session, rq->match.param[0], user, &iss, &delivery, &err);
        count(&h->ch->outcomes[outcome_of(r)]);
        if (r) {
                fail(rs, r, &err);
                return;
        }
        count(&h->ch->delivery[delivery == 0 ? 0 : delivery == CPN_DELIVERY_PENDING ? 1 : 2]);
        cpn_response_ok(rs, 202,
               snprintf(rs->body, rs->body_cap,
                        "{\"result\":\"issued\",\"campaign_id\":\"%s\",\"user_id\":\"%s\",\"seq\":%lld}",
                        iss.campaign_id, iss.user_id, (long long)iss.seq));
}

static void handle_campaign_create(void *thread, const struct cpn_request *rq, struct cpn_response *rs) {
        struct coupon_thread *h = thread;
        const struct cpn_config *cfg = h->ch->cfg;
        struct cpn_error err = { { 0 } };
        struct cpn_campaign_state st = { 0 };
        char id[sizeof(st.c.id)];
        int64_t persisted = 0;
        int r;

        if (!cfg->admin_token) {
                cpn_response_error(rs, CPN_E_ADMIN_DISABLED, NULL);
                return;
        }
        if (!cpn_http_bearer_ok(rq->authorization, cfg->admin_token)) {
                cpn_response_error(rs, CPN_E_UNAUTHORIZED, NULL);
                return;
        }
        if (!cpn_http_json_type(rq->content_type)) {
                cpn_response_error(rs, CPN_E_UNSUPPORTED_MEDIA_TYPE, NULL);
                return;
        }
        if (cpn_campaign_parse(rq->body, rq->body_len, cpn_time_now_ms(), &st.c, &err) != 0) {
                cpn_response_error(rs, CPN_E_INVALID_REQUEST, err.msg);
                return;
        }
        r = cpn_service_campaign_create(h->session, &st.c, &err);
        if (r) {
                /* Say how far a create got that did not complete. */
                const char *msg = r == CPN_CAMPAIGN_SAME || r == CPN_CAMPAIGN_EXISTS ? err.msg
                                  : r == CPN_CAMPAIGN_PARTIAL
                                          ? "the campaign is recorded in MySQL but Redis could not be written: it "
                                            "is not open and nothing can be issued; repeat this same request to "
                                            "complete it"
                                  : r == CPN_UNKNOWN
                                          ? "the campaign is recorded in MySQL; whether Redis has it is not known "
                                            "(its answer was lost): repeat this same request to complete it"
                                          : NULL;

                fail(rs, r, &err);
                if (msg)
                        cpn_response_answer(rs, rs->error, msg);
                return;
        }
        cpn_log_info("campaign %s created: total %lld", st.c.id, (long long)st.c.total);
        /* Not st.c.id itself: the read clears @st before it looks the id up,
         * and the answer said "id":"" with "persisted":null. */
        memcpy(id, st.c.id, sizeof(id));
        r = cpn_service_campaign_get(h->session, id, &st, &persisted, &err);
        if (r) {
                fail(rs, r, &err);
                return;
        }
        cpn_response_ok(rs, 201, cpn_campaign_json(rs->body, rs->body_cap, &st, persisted));
}

static void handle_campaign_get(void *thread, const struct cpn_request *rq, struct cpn_response *rs) {
        struct coupon_thread *h = thread;
        struct cpn_error err = { { 0 } };
        struct cpn_campaign_state st;
        int64_t persisted;
        int r = cpn_service_campaign_get(h->session, rq->match.param[0], &st, &persisted, &err);

        if (r) {
                fail(rs, r, &err);
                return;
        }
        cpn_response_ok(rs, 200, cpn_campaign_json(rs->body, rs->body_cap, &st, persisted));
}

static void handle_user_get(void *thread, const struct cpn_request *rq, struct cpn_response *rs) {
        struct coupon_thread *h = thread;
        static const char *const names[] = { "none", "issued", "persisted" };
        struct cpn_error err = { { 0 } };
        enum cpn_user_state state;
        int r;

        if (!cpn_http_caller_is(rq, rq->match.param[1])) {
                cpn_response_error(rs, CPN_E_FORBIDDEN, NULL);
                return;
        }
        r = cpn_service_user_get(h->session, rq->match.param[0], rq->match.param[1], &state, &err);

        if (r) {
                fail(rs, r, &err);
                return;
        }
        cpn_response_ok(rs, 200, snprintf(rs->body, rs->body_cap, "{\"user_id\":\"%s\",\"state\":\"%s\"}",
                                          rq->match.param[1], names[state]));
}

static const char bad_campaign_id[] = "campaign_id must match [A-Za-z0-9_-]{1,64}";

static const struct cpn_route routes[] = {
        { "POST", "/v1/campaigns/{id}/issue", "issue", CPN_ROUTE_BODY | CPN_ROUTE_CALLER, handle_issue,
          bad_campaign_id },
        { "POST", "/v1/campaigns", "campaign_create", CPN_ROUTE_BODY, handle_campaign_create, NULL },
        { "GET", "/v1/campaigns/{id}", "campaign_get", 0, handle_campaign_get, bad_campaign_id },
        { "GET", "/v1/campaigns/{id}/users/{user}", "user_get", CPN_ROUTE_CALLER, handle_user_get,
          "campaign_id must match [A-Za-z0-9_-]{1,64} and user_id [A-Za-z0-9_.:-]{1,64}" },
};

static int thread_new(void **ret, void *data) {
        struct coupon_thread *t = calloc(1, sizeof(*t));
        int r;

        if (!t)
                return -ENOMEM;
        t->ch = data;
        if (t->ch->svc) {
                r = cpn_session_new(&t->session, t->ch->svc);
                if (r) {
                        free(t);
                        return r;
                }
        }
        *ret = t;
        return 0;
}

static void thread_free(void *thread) {
        struct coupon_thread *t = thread;

        if (t) {
                cpn_session_free(t->session);
                free(t);
        }
}

void cpn_coupon_http_metrics(void *data, FILE *f) {
        static const char *const outcome_names[_CPN_OUTCOME_N] = {
                "issued", "already_issued", "sold_out", "not_open", "campaign_not_found", "paused",
                "unavailable", "invalid", "unknown",
        };
        struct cpn_coupon_http *ch = data;

        fprintf(f, "# HELP coupon_issue_outcomes_total Issue decisions by outcome.\n"
                   "# TYPE coupon_issue_outcomes_total counter\n");
        for (int o = 0; o < _CPN_OUTCOME_N; o++)
                fprintf(f, "coupon_issue_outcomes_total{outcome=\"%s\"} %llu\n", outcome_names[o],
                        (unsigned long long)atomic_load(&ch->outcomes[o]));
        fprintf(f, "# HELP coupon_issue_delivery_total Kafka state of issued coupons when answered.\n"
                   "# TYPE coupon_issue_delivery_total counter\n"
                   "coupon_issue_delivery_total{state=\"acked\"} %llu\n"
                   "coupon_issue_delivery_total{state=\"pending\"} %llu\n"
                   "coupon_issue_delivery_total{state=\"failed\"} %llu\n",
                (unsigned long long)atomic_load(&ch->delivery[0]),
                (unsigned long long)atomic_load(&ch->delivery[1]),
                (unsigned long long)atomic_load(&ch->delivery[2]));
        if (ch->svc && ch->svc->pipe) {
                struct cpn_redis_pipe_stats st;

                cpn_redis_pipe_stats(ch->svc->pipe, &st);
                fprintf(f, "# HELP coupon_redis_pipe_batches_total Pipelined batches of issue scripts written to Redis.\n"
                           "# TYPE coupon_redis_pipe_batches_total counter\ncoupon_redis_pipe_batches_total %llu\n"
                           "# HELP coupon_redis_pipe_calls_total Issue calls carried by those batches.\n"
                           "# TYPE coupon_redis_pipe_calls_total counter\ncoupon_redis_pipe_calls_total %llu\n"
                           "# HELP coupon_redis_pipe_asked_again_total Issue calls sent again after their answer was lost.\n"
                           "# TYPE coupon_redis_pipe_asked_again_total counter\ncoupon_redis_pipe_asked_again_total %llu\n"
                           "# HELP coupon_redis_pipe_refused_total Issue calls refused unsent (503) while Redis was not answering.\n"
                           "# TYPE coupon_redis_pipe_refused_total counter\ncoupon_redis_pipe_refused_total %llu\n"
                           "# HELP coupon_redis_pipe_down 1 while Redis is not answering and issue calls are refused.\n"
                           "# TYPE coupon_redis_pipe_down gauge\ncoupon_redis_pipe_down %d\n",
                        (unsigned long long)st.batches, (unsigned long long)st.calls,
                        (unsigned long long)st.asked_again, (unsigned long long)st.refused, st.down ? 1 : 0);
        }
}

struct cpn_http_product cpn_coupon_http_product(struct cpn_coupon_http *ch) {
        return (struct cpn_http_product){
                .name = "coupon",
                .routes = routes,
                .n_routes = sizeof(routes) / sizeof(routes[0]),
                .data = ch,
                .thread_new = thread_new,
                .thread_free = thread_free,
                .metrics = cpn_coupon_http_metrics,
        };
}
