#pragma once
/*
 * The card payment gateway's client: confirm, cancel and look-up calls of
 * a Korean card gateway's v1 API (Toss Payments style), over libcurl, which
 * no other module sees. Every call carries Basic auth with the secret key;
 * the order id is the ticket id.
 *
 * A struct cpn_gateway is one thread's: one curl handle, whose connection
 * is kept between calls. What an answer means for money is in the result:
 * a call that never reached the gateway (CPN_GW_UNREACHABLE) charged
 * nothing; one that went out and got no answer in time (CPN_GW_UNKNOWN)
 * may have, and is settled by a look-up.
 */
#include <stdint.h>

#include "cpn/error.h"
#include "cpn/ticket/ticket.h"

struct cpn_gateway;

enum cpn_gw_result {
        CPN_GW_DONE,        /* a payment of status DONE: charged */
        CPN_GW_CANCELED,    /* a payment of status CANCELED: charged and given back */
        CPN_GW_DECLINED,    /* the card was declined (a 4xx with a code): nothing charged */
        CPN_GW_NOT_FOUND,   /* look-up: nothing was charged for the order */
        CPN_GW_REFUSED,     /* the gateway refused the call itself (auth, bad request): nothing charged */
        CPN_GW_UNREACHABLE, /* the call never reached it (connect failed): nothing charged */
        CPN_GW_UNKNOWN,     /* sent, and no answer within the timeout (or a 5xx): anything may have happened */
};

struct cpn_gw_answer {
        enum cpn_gw_result result;
        int http_status;                          /* 0 without an answer */
        char payment_key[CPN_PAYMENT_KEY_MAX + 1]; /* DONE, CANCELED */
        int64_t total_amount;                     /* DONE, CANCELED */
        char code[64];                            /* DECLINED, REFUSED: the gateway's code */
        char message[256];                        /* its message, or what went wrong */
};

/* @base_url (no trailing '/' needed) and @secret are copied. Returns 0 or
 * -ENOMEM. */
int cpn_gateway_new(struct cpn_gateway **ret, const char *base_url, const char *secret, long timeout_ms);
struct cpn_gateway *cpn_gateway_free(struct cpn_gateway *g);

/* POST /v1/payments/confirm with Idempotency-Key @idem. Returns 0 with
 * @out (DONE, DECLINED, REFUSED, UNREACHABLE, UNKNOWN) or -ENOMEM. */
int cpn_gateway_confirm(struct cpn_gateway *g, const char *payment_key, const char *order_id, int64_t amount,
                        const char *idem, struct cpn_gw_answer *out);
/* POST /v1/payments/{payment_key}/cancel. 0 with @out (CANCELED, REFUSED,
 * UNREACHABLE, UNKNOWN, NOT_FOUND) or -ENOMEM. */
int cpn_gateway_cancel(struct cpn_gateway *g, const char *payment_key, const char *reason,
                       struct cpn_gw_answer *out);
/* GET /v1/payments/orders/{order_id}. 0 with @out (DONE, CANCELED,
 * NOT_FOUND, REFUSED, UNREACHABLE, UNKNOWN) or -ENOMEM. */
int cpn_gateway_lookup(struct cpn_gateway *g, const char *order_id, struct cpn_gw_answer *out);

/* Once per process, before any thread uses a gateway (libcurl's global
 * set-up). Returns 0 or -EIO. */
int cpn_gateway_global_init(void);
