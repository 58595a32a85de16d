#pragma once
/*
 * The coupon-api server: civetweb (seen only by src/http/server.c) in front
 * of handlers (src/coupon/handlers.c) that parse, make one domain call and map
 * its result through the one error table of http.h.
 */
#include "cpn/config.h"
#include "cpn/error.h"
#include "cpn/http.h"
#include "cpn/coupon/service.h"

struct cpn_server;

/* What a handler sees of a request: no civetweb types. Borrowed for the
 * duration of the call. */
struct cpn_request {
        struct cpn_route_match match;
        const char *content_type;  /* NULL if absent */
        const char *authorization; /* NULL if absent */
        const char *body;
        size_t body_len;
};

/* What a handler produces; the server writes it in one write. */
struct cpn_response {
        int status;
        const char *allow;         /* Allow header for 405, or NULL */
        int retry_after;           /* seconds, 0 = none */
        char *body;                /* points into the thread's buffer */
        size_t body_len;
        size_t body_cap;
        enum cpn_api_error error;  /* valid when status >= 400 */
        struct cpn_error detail;   /* what went wrong, for the log of 5xx */
};

/* Per-thread state of the handlers. */
struct cpn_handler_ctx {
        const struct cpn_config *cfg;
        struct cpn_session *session;
        struct cpn_metrics *metrics;
        struct cpn_producer *producer;
};

/* Fills @rs for @rq. Never fails: every outcome is an answer. */
void cpn_handle(struct cpn_handler_ctx *h, const struct cpn_request *rq, struct cpn_response *rs);
/* Sets @rs to the error answer @e with an optional @message. */
void cpn_response_error(struct cpn_response *rs, enum cpn_api_error e, const char *message);
/* Constant-time check of "Bearer <token>". */
bool cpn_admin_authorized(const char *header, const char *token);

/* Starts listening on COUPON_HTTP_ADDR with COUPON_HTTP_THREADS threads.
 * Returns 0, CPN_INVALID (bad address, port in use: text in @err). */
int cpn_server_new(struct cpn_server **ret, const struct cpn_config *cfg, struct cpn_service *svc,
                   struct cpn_error *err);
/* Stops accepting, waits for requests in flight, frees. */
struct cpn_server *cpn_server_free(struct cpn_server *s);
