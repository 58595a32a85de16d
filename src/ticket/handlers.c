/*
 * The ticket product's routes: parse and validate (pure functions of
 * ticket.c), make one call of the ticket service, map its result through
 * the product's rows of the outcome table. Answers are formatted into the
 * thread's buffer.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cpn/error.h"
#include "cpn/http.h"
#include "cpn/log.h"
#include "cpn/ticket/http.h"

static const struct cpn_api_error_info
        type_not_found = { 404, "ticket_type_not_found", "no such ticket type", 0 },
        type_exists = { 409, "ticket_type_exists", "a ticket type with this id exists", 0 },
        type_partial = { 503, "unavailable",
                         "the ticket type is recorded in MySQL but Redis could not be written: nothing can be "
                         "reserved yet; repeat this same request to complete it", 1 },
        sold_out = { 410, "sold_out",
                     "no ticket of this type is available now (holds that expire give stock back)", 0 },
        not_open = { 403, "not_open", "the sale of this ticket type is not open", 0 },
        ticket_not_found = { 404, "ticket_not_found", "no such ticket", 0 },
        not_pending = { 409, "not_pending", "the ticket is not PENDING", 0 },
        amount_mismatch = { 400, "amount_mismatch", "amount is not the ticket's price; nothing was charged", 0 },
        payment_declined = { 402, "payment_declined",
                             "the card was declined; the ticket stays PENDING until its hold expires and may be "
                             "paid again", 0 },
        hold_expired = { 409, "hold_expired",
                         "the hold had expired or was cancelled before the payment could be recorded; any charge "
                         "was cancelled", 0 },
        already_paid = { 409, "already_paid", "the ticket was paid with another payment_key", 0 },
        payment_unknown = { 504, "payment_unknown",
                            "the payment gateway did not answer in time: the service asks it and the ticket shows "
                            "the outcome (GET it); repeating the same payment never charges twice", 2 },
        payment_disabled = { 503, "unavailable", "payments are disabled until COUPON_PAYMENT_URL is set", 0 },
        gateway_down = { 503, "unavailable", "the payment gateway cannot be reached; nothing was charged", 1 },
        /* MySQL's commit went unanswered: the ticket may exist. */
        reserve_unknown = { 504, "outcome_unknown",
                            "MySQL was lost while recording the reservation; it may or may not exist: repeat the "
                            "same request (201 or 200 tells, and never takes a second ticket)", 1 };

const struct cpn_api_error_info *cpn_ticket_answer(int r) {
        switch (r) {
        case CPN_TICKET_TYPE_NOT_FOUND: return &type_not_found;
        case CPN_TICKET_TYPE_EXISTS:
        case CPN_TICKET_TYPE_SAME: return &type_exists;
        case CPN_TICKET_TYPE_PARTIAL: return &type_partial;
        case CPN_TICKET_SOLD_OUT: return &sold_out;
        case CPN_TICKET_NOT_OPEN: return &not_open;
        case CPN_TICKET_NOT_FOUND: return &ticket_not_found;
        case CPN_TICKET_NOT_PENDING: return &not_pending;
        case CPN_UNKNOWN: return &reserve_unknown;
        case CPN_TICKET_AMOUNT_MISMATCH: return &amount_mismatch;
        case CPN_TICKET_DECLINED: return &payment_declined;
        case CPN_TICKET_HOLD_EXPIRED: return &hold_expired;
        case CPN_TICKET_ALREADY_PAID: return &already_paid;
        case CPN_TICKET_PAYMENT_UNKNOWN: return &payment_unknown;
        case CPN_TICKET_PAYMENT_DISABLED: return &payment_disabled;
        case CPN_TICKET_GATEWAY_DOWN: return &gateway_down;
        default: return NULL;
        }
}

/* A domain call's non-zero result becomes its answer. */
static void fail(struct cpn_response *rs, int r, const struct cpn_error *err) {
        const struct cpn_api_error_info *info = cpn_ticket_answer(r);

        if (!info)
                info = cpn_api_error_info(cpn_api_error_from_code(r));
        if (info == &not_open || info == &not_pending || info == &type_exists || info == &payment_declined ||
            info == &hold_expired || info == &amount_mismatch ||
            info == cpn_api_error_info(CPN_E_INVALID_REQUEST) || r == -EBUSY)
                cpn_response_answer(rs, info, err->msg[0] ? err->msg : NULL);
        else
                cpn_response_answer(rs, info, NULL);
        if (rs->status >= 500)
                rs->detail = *err;
}

struct ticket_thread {
        struct cpn_ticket_http *th;
        struct cpn_ticket_session *session; /* owned; NULL without a service */
};

static void count(_Atomic uint64_t *c) {
        atomic_fetch_add_explicit(c, 1, memory_order_relaxed);
}

static bool admin(const struct cpn_config *cfg, const struct cpn_request *rq, struct cpn_response *rs) {
        if (!cfg->admin_token) {
                cpn_response_error(rs, CPN_E_ADMIN_DISABLED, NULL);
                return false;
        }
        if (!cpn_http_bearer_ok(rq->authorization, cfg->admin_token)) {
                cpn_response_error(rs, CPN_E_UNAUTHORIZED, NULL);
                return false;
        }
        return true;
}

static void handle_type_create(void *thread, const struct cpn_request *rq, struct cpn_response *rs) {
        struct ticket_thread *h = thread;
        struct cpn_error err = { { 0 } };
        struct cpn_ticket_type t;
        struct cpn_ticket_type_state st;
        int r;

        if (!admin(h->th->cfg, rq, rs))
                return;
        if (!cpn_http_json_type(rq->content_type)) {
                cpn_response_error(rs, CPN_E_UNSUPPORTED_MEDIA_TYPE, NULL);
                return;
        }
        if (cpn_ticket_type_parse(rq->body, rq->body_len, cpn_time_now_ms(), &t, &err) != 0) {
                cpn_response_error(rs, CPN_E_INVALID_REQUEST, err.msg);
                return;
        }
        r = cpn_ticket_type_create(h->session, &t, &st, &err);
        if (r) {
                fail(rs, r, &err);
                return;
        }
        cpn_log_info("ticket type %s created: %lld at %lld %s", t.id, (long long)t.total, (long long)t.price,
                     t.currency);
        r = cpn_ticket_type_get(h->session, t.id, &st, &err);
        if (r) {
                fail(rs, r, &err);
                return;
        }
        cpn_response_ok(rs, 201, cpn_ticket_type_json(rs->body, rs->body_cap, &st));
}

static void handle_type_get(void *thread, const struct cpn_request *rq, struct cpn_response *rs) {
        struct ticket_thread *h = thread;
        struct cpn_error err = { { 0 } };
        struct cpn_ticket_type_state st;
        int r = cpn_ticket_type_get(h->session, rq->match.param[0], &st, &err);

        if (r) {
                fail(rs, r, &err);
                return;
        }
        cpn_response_ok(rs, 200, cpn_ticket_type_json(rs->body, rs->body_cap, &st));
}

static enum cpn_reserve_outcome reserve_outcome(int r) {
        switch (r) {
        case 0: return CPN_RESERVE_RESERVED;
        case CPN_TICKET_HELD: return CPN_RESERVE_HELD;
        case CPN_TICKET_SOLD_OUT: return CPN_RESERVE_SOLD_OUT;
        case CPN_TICKET_NOT_OPEN: return CPN_RESERVE_NOT_OPEN;
        case CPN_TICKET_TYPE_NOT_FOUND: return CPN_RESERVE_NOT_FOUND;
        case CPN_UNKNOWN: return CPN_RESERVE_UNKNOWN;
        default: return CPN_RESERVE_UNAVAILABLE;
        }
}

static void handle_reserve(void *thread, const struct cpn_request *rq, struct cpn_response *rs) {
        struct ticket_thread *h = thread;
        struct cpn_error err = { { 0 } };
        struct cpn_ticket t;
        char user[CPN_ID_MAX + 1];
        int r;

        if (!cpn_http_json_type(rq->content_type)) {
                cpn_response_error(rs, CPN_E_UNSUPPORTED_MEDIA_TYPE, NULL);
                return;
        }
        if (cpn_http_user_body(rq, rs, user) != 0) {
                count(&h->th->reserve[CPN_RESERVE_INVALID]);
                return;
        }
        r = cpn_ticket_reserve(h->session, rq->match.param[0], user, &t, &err);
        count(&h->th->reserve[reserve_outcome(r)]);
        if (r && r != CPN_TICKET_HELD) {
                fail(rs, r, &err);
                return;
        }
        cpn_response_ok(rs, r ? 200 : 201, cpn_ticket_json(rs->body, rs->body_cap, &t));
}

/* With identity on, whether the ticket of the request is the caller's
 * (false: answered, 404 or 403, nothing changed). A ticket's owner never
 * changes, so the check may come before the call that acts on it. */
static bool owned(struct ticket_thread *h, const struct cpn_request *rq, struct cpn_response *rs) {
        struct cpn_error err = { { 0 } };
        struct cpn_ticket t;
        int r;

        if (!rq->caller)
                return true;
        r = cpn_ticket_get(h->session, rq->match.param[0], &t, &err);
        if (r) {
                fail(rs, r, &err);
                return false;
        }
        if (!cpn_http_caller_is(rq, t.user_id)) {
                cpn_response_error(rs, CPN_E_FORBIDDEN, "this ticket is another user's");
                return false;
        }
        return true;
}

static void handle_ticket_get(void *thread, const struct cpn_request *rq, struct cpn_response *rs) {
        struct ticket_thread *h = thread;
        struct cpn_error err = { { 0 } };
        struct cpn_ticket t;
        int r = cpn_ticket_get(h->session, rq->match.param[0], &t, &err);

        if (r) {
                fail(rs, r, &err);
                return;
        }
        if (!cpn_http_caller_is(rq, t.user_id)) {
                cpn_response_error(rs, CPN_E_FORBIDDEN, "this ticket is another user's");
                return;
        }
        cpn_response_ok(rs, 200, cpn_ticket_json(rs->body, rs->body_cap, &t));
}

static void handle_ticket_cancel(void *thread, const struct cpn_request *rq, struct cpn_response *rs) {
        struct ticket_thread *h = thread;
        struct cpn_error err = { { 0 } };
        struct cpn_ticket t;
        int r;

        if (!owned(h, rq, rs))
                return;
        r = cpn_ticket_cancel(h->session, rq->match.param[0], &t, &err);
        if (r) {
                fail(rs, r, &err);
                return;
        }
        count(&h->th->cancelled);
        cpn_response_ok(rs, 200, cpn_ticket_json(rs->body, rs->body_cap, &t));
}

static void handle_ticket_pay(void *thread, const struct cpn_request *rq, struct cpn_response *rs) {
        struct ticket_thread *h = thread;
        struct cpn_error err = { { 0 } };
        char key[CPN_PAYMENT_KEY_MAX + 1];
        struct cpn_ticket t;
        int64_t amount;
        int r;

        if (!cpn_http_json_type(rq->content_type)) {
                cpn_response_error(rs, CPN_E_UNSUPPORTED_MEDIA_TYPE, NULL);
                return;
        }
        if (cpn_ticket_parse_payment(rq->body, rq->body_len, key, &amount, &err) != 0) {
                cpn_response_error(rs, CPN_E_INVALID_REQUEST, err.msg);
                return;
        }
        if (!owned(h, rq, rs))
                return;
        r = cpn_ticket_pay(h->session, rq->match.param[0], key, amount, &t, &err);
        count(&h->th->pay[r == 0 ? 0 : r == CPN_TICKET_DECLINED ? 1 : r == CPN_TICKET_HOLD_EXPIRED ? 2
                                 : r == CPN_TICKET_PAYMENT_UNKNOWN ? 3 : 4]);
        if (r) {
                fail(rs, r, &err);
                return;
        }
        cpn_response_ok(rs, 200, cpn_ticket_json(rs->body, rs->body_cap, &t));
}

static const char bad_type_id[] = "ticket_type_id must match [A-Za-z0-9_-]{1,64}";
static const char bad_ticket_id[] = "ticket_id must be a ticket's UUID (lower case, 36 characters)";

static const struct cpn_route routes[] = {
        { "POST", "/v1/ticket-types", "ticket_type_create", CPN_ROUTE_BODY, handle_type_create, NULL },
        { "GET", "/v1/ticket-types/{id}", "ticket_type_get", 0, handle_type_get, bad_type_id },
        { "POST", "/v1/ticket-types/{id}/reservations", "reserve", CPN_ROUTE_BODY | CPN_ROUTE_CALLER, handle_reserve,
          bad_type_id },
        { "GET", "/v1/tickets/{uuid}", "ticket_get", CPN_ROUTE_CALLER, handle_ticket_get, bad_ticket_id },
        { "DELETE", "/v1/tickets/{uuid}", "ticket_cancel", CPN_ROUTE_CALLER, handle_ticket_cancel, bad_ticket_id },
        { "POST", "/v1/tickets/{uuid}/payment", "ticket_pay", CPN_ROUTE_BODY | CPN_ROUTE_CALLER, handle_ticket_pay,
          bad_ticket_id },
};

static int thread_new(void **ret, void *data) {
        struct ticket_thread *t = calloc(1, sizeof(*t));
        int r;

        if (!t)
                return -ENOMEM;
        t->th = data;
        if (t->th->svc) {
                r = cpn_ticket_session_new(&t->session, t->th->svc);
                if (r) {
                        free(t);
                        return r;
                }
        }
        *ret = t;
        return 0;
}

static void thread_free(void *thread) {
        struct ticket_thread *t = thread;

        if (t) {
                cpn_ticket_session_free(t->session);
                free(t);
        }
}

static void metrics(void *data, FILE *f) {
        static const char *const names[_CPN_RESERVE_N] = { "reserved",  "held",    "sold_out",    "not_open",
                                                           "not_found", "invalid", "unavailable", "unknown" };
        struct cpn_ticket_http *th = data;

        fprintf(f, "# HELP coupon_ticket_reservations_total Ticket reservations by outcome.\n"
                   "# TYPE coupon_ticket_reservations_total counter\n");
        for (int o = 0; o < _CPN_RESERVE_N; o++)
                fprintf(f, "coupon_ticket_reservations_total{outcome=\"%s\"} %llu\n", names[o],
                        (unsigned long long)atomic_load(&th->reserve[o]));
        fprintf(f, "# HELP coupon_ticket_cancelled_total Holds given back by their owner.\n"
                   "# TYPE coupon_ticket_cancelled_total counter\ncoupon_ticket_cancelled_total %llu\n",
                (unsigned long long)atomic_load(&th->cancelled));
        fprintf(f, "# HELP coupon_ticket_payments_total Payment requests by outcome.\n"
                   "# TYPE coupon_ticket_payments_total counter\n"
                   "coupon_ticket_payments_total{outcome=\"paid\"} %llu\n"
                   "coupon_ticket_payments_total{outcome=\"declined\"} %llu\n"
                   "coupon_ticket_payments_total{outcome=\"hold_expired\"} %llu\n"
                   "coupon_ticket_payments_total{outcome=\"unknown\"} %llu\n"
                   "coupon_ticket_payments_total{outcome=\"other\"} %llu\n",
                (unsigned long long)atomic_load(&th->pay[0]), (unsigned long long)atomic_load(&th->pay[1]),
                (unsigned long long)atomic_load(&th->pay[2]), (unsigned long long)atomic_load(&th->pay[3]),
                (unsigned long long)atomic_load(&th->pay[4]));
        if (th->reaper)
                fprintf(f, "# HELP coupon_ticket_expired_total Holds this process's reaper ended (stock given back).\n"
                           "# TYPE coupon_ticket_expired_total counter\ncoupon_ticket_expired_total %llu\n",
                        (unsigned long long)cpn_ticket_reaper_expired(th->reaper));
        if (th->relay)
                fprintf(f, "# HELP coupon_ticket_outbox_published_total Outbox rows this process relayed to Kafka.\n"
                           "# TYPE coupon_ticket_outbox_published_total counter\ncoupon_ticket_outbox_published_total %llu\n",
                        (unsigned long long)cpn_ticket_relay_published(th->relay));
        if (th->reaper)
                fprintf(f, "# HELP coupon_ticket_settled_total Payments of unknown outcome settled by asking the gateway.\n"
                           "# TYPE coupon_ticket_settled_total counter\ncoupon_ticket_settled_total %llu\n",
                        (unsigned long long)cpn_ticket_reaper_settled(th->reaper));
}

struct cpn_http_product cpn_ticket_http_product(struct cpn_ticket_http *th) {
        return (struct cpn_http_product){
                .name = "ticket",
                .routes = routes,
                .n_routes = sizeof(routes) / sizeof(routes[0]),
                .data = th,
                .thread_new = thread_new,
                .thread_free = thread_free,
                .metrics = metrics,
        };
}
