/*
 * Handlers: parse and validate (pure functions of json.c), make one domain
 * call, map its result through the one table. Answers are formatted into
 * the thread's buffer; nothing here allocates except cJSON's parse of a
 * request body.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "cpn/api.h"
#include "cpn/json.h"
#include "cpn/log.h"

void cpn_response_error(struct cpn_response *rs, enum cpn_api_error e, const char *message) {
        const struct cpn_api_error_info *info = cpn_api_error_info(e);
        int n = cpn_api_error_body(rs->body, rs->body_cap, e, message);

        if (n < 0)
                n = cpn_api_error_body(rs->body, rs->body_cap, e, NULL);
        rs->status = info->status;
        rs->retry_after = info->retry_after;
        rs->error = e;
        rs->body_len = n < 0 ? 0 : (size_t)n;
}

static void answer(struct cpn_response *rs, int status, int len) {
        if (len < 0 || (size_t)len >= rs->body_cap) {
                cpn_response_error(rs, CPN_E_INTERNAL, "answer too large");
                return;
        }
        rs->status = status;
        rs->body_len = (size_t)len;
}

/* A domain call's non-zero result becomes its answer. */
static void fail(struct cpn_response *rs, int r, const struct cpn_error *err) {
        enum cpn_api_error e = cpn_api_error_from_code(r);

        if (e == CPN_E_INVALID_REQUEST || e == CPN_E_NOT_OPEN)
                cpn_response_error(rs, e, err->msg[0] ? err->msg : NULL);
        else
                cpn_response_error(rs, e, NULL);
        if (rs->status >= 500)
                rs->detail = *err;
}

bool cpn_admin_authorized(const char *header, const char *token) {
        size_t hl, tl = strlen(token);
        unsigned char diff = 0;

        if (!header || strncasecmp(header, "Bearer ", 7) != 0)
                return false;
        header += 7;
        hl = strlen(header);
        /* Time depends on the expected token's length only. */
        diff |= hl != tl;
        for (size_t i = 0; i < tl; i++)
                diff |= (unsigned char)token[i] ^ (unsigned char)(i < hl ? header[i] : 0);
        return diff == 0;
}

static bool json_content_type(const char *ct) {
        size_t n = strlen("application/json");

        if (!ct || strncasecmp(ct, "application/json", n) != 0)
                return false;
        ct += n;
        while (*ct == ' ' || *ct == '\t')
                ct++;
        return *ct == '\0' || *ct == ';';
}

static enum cpn_outcome outcome_of(int r) {
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

static void handle_issue(struct cpn_handler_ctx *h, const struct cpn_request *rq, struct cpn_response *rs) {
        struct cpn_error err = { { 0 } };
        struct cpn_issuance iss;
        char user[CPN_ID_MAX + 1];
        int r, delivery = 0;

        if (cpn_campaign_parse_issue(rq->body, rq->body_len, user, &err) != 0) {
                cpn_metrics_outcome(h->metrics, CPN_OUTCOME_INVALID);
                cpn_response_error(rs, CPN_E_INVALID_REQUEST, err.msg);
                return;
        }
        r = cpn_service_issue(h->session, rq->match.campaign_id, user, &iss, &delivery, &err);
        cpn_metrics_outcome(h->metrics, outcome_of(r));
        if (r) {
                fail(rs, r, &err);
                return;
        }
        atomic_fetch_add_explicit(&h->metrics->delivery[delivery == 0 ? 0 : delivery == CPN_DELIVERY_PENDING ? 1 : 2],
                                  1, memory_order_relaxed);
        answer(rs, 202,
               snprintf(rs->body, rs->body_cap,
                        "{\"result\":\"issued\",\"campaign_id\":\"%s\",\"user_id\":\"%s\",\"seq\":%lld}",
                        iss.campaign_id, iss.user_id, (long long)iss.seq));
}

static void handle_campaign_create(struct cpn_handler_ctx *h, const struct cpn_request *rq,
                                   struct cpn_response *rs) {
        struct cpn_error err = { { 0 } };
        struct cpn_campaign_state st = { 0 };
        char id[sizeof(st.c.id)];
        int64_t persisted = 0;
        int r;

        if (!h->cfg->admin_token) {
                cpn_response_error(rs, CPN_E_ADMIN_DISABLED, NULL);
                return;
        }
        if (!cpn_admin_authorized(rq->authorization, h->cfg->admin_token)) {
                cpn_response_error(rs, CPN_E_UNAUTHORIZED, NULL);
                return;
        }
        if (!json_content_type(rq->content_type)) {
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
                        cpn_response_error(rs, rs->error, msg);
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
        answer(rs, 201, cpn_campaign_json(rs->body, rs->body_cap, &st, persisted));
}

static void handle_campaign_get(struct cpn_handler_ctx *h, const struct cpn_request *rq,
                                struct cpn_response *rs) {
        struct cpn_error err = { { 0 } };
        struct cpn_campaign_state st;
        int64_t persisted;
        int r = cpn_service_campaign_get(h->session, rq->match.campaign_id, &st, &persisted, &err);

        if (r) {
                fail(rs, r, &err);
                return;
        }
        answer(rs, 200, cpn_campaign_json(rs->body, rs->body_cap, &st, persisted));
}

static void handle_user_get(struct cpn_handler_ctx *h, const struct cpn_request *rq,
                            struct cpn_response *rs) {
        static const char *const names[] = { "none", "issued", "persisted" };
        struct cpn_error err = { { 0 } };
        enum cpn_user_state state;
        int r = cpn_service_user_get(h->session, rq->match.campaign_id, rq->match.user_id, &state, &err);

        if (r) {
                fail(rs, r, &err);
                return;
        }
        answer(rs, 200, snprintf(rs->body, rs->body_cap, "{\"user_id\":\"%s\",\"state\":\"%s\"}",
                                 rq->match.user_id, names[state]));
}

static void handle_readyz(struct cpn_handler_ctx *h, struct cpn_response *rs) {
        struct cpn_error err = { { 0 } };
        struct cpn_producer_stats ps;
        int64_t backlog = -1;
        bool redis_ok, db_ok;
        char bl[24];

        redis_ok = cpn_service_ping_redis(h->session, &err) == 0;
        if (redis_ok && cpn_service_outbox_backlog(h->session, &backlog, &err) != 0)
                backlog = -1;
        db_ok = cpn_service_db_up(h->session); /* no I/O: a stalled MySQL must not hold up a health check */
        cpn_producer_stats(h->producer, &ps);
        if (backlog < 0)
                snprintf(bl, sizeof(bl), "null");
        else
                snprintf(bl, sizeof(bl), "%lld", (long long)backlog);
        answer(rs, redis_ok ? 200 : 503,
               snprintf(rs->body, rs->body_cap,
                        "{\"status\":\"%s\",\"redis\":\"%s\",\"mysql\":\"%s\",\"kafka\":\"%s\","
                        "\"outbox_backlog\":%s,\"kafka_in_flight\":%lld}",
                        redis_ok ? "ready" : "unavailable", redis_ok ? "up" : "down", db_ok ? "up" : "down",
                        ps.brokers_down ? "down" : "up", bl, (long long)ps.in_flight));
        if (!redis_ok)
                rs->retry_after = 1;
}

void cpn_handle(struct cpn_handler_ctx *h, const struct cpn_request *rq, struct cpn_response *rs) {
        switch (rq->match.route) {
        case CPN_ROUTE_ISSUE:
                if (!json_content_type(rq->content_type))
                        cpn_response_error(rs, CPN_E_UNSUPPORTED_MEDIA_TYPE, NULL);
                else
                        handle_issue(h, rq, rs);
                break;
        case CPN_ROUTE_CAMPAIGNS:
                handle_campaign_create(h, rq, rs);
                break;
        case CPN_ROUTE_CAMPAIGN:
                handle_campaign_get(h, rq, rs);
                break;
        case CPN_ROUTE_USER:
                handle_user_get(h, rq, rs);
                break;
        case CPN_ROUTE_HEALTHZ:
                answer(rs, 200, snprintf(rs->body, rs->body_cap, "{\"status\":\"ok\"}"));
                break;
        case CPN_ROUTE_READYZ:
                handle_readyz(h, rs);
                break;
        default:
                cpn_response_error(rs, CPN_E_NOT_FOUND, NULL);
                break;
        }
}
