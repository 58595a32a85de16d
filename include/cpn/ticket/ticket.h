#pragma once
/*
 * The ticket product's domain types, pure functions only: a ticket type
 * (stock sold for money, held while its buyer pays) and a ticket (one
 * reservation and its life), their phases and statuses, and the JSON of
 * their requests and answers on the strict object of json.h. Any thread.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cpn/error.h"
#include "cpn/types.h"

/* The ticket product's outcomes (error.h: the second product's hundred). */
enum {
        CPN_TICKET_TYPE_NOT_FOUND = CPN_PRODUCT_BASE + 100,
        CPN_TICKET_TYPE_EXISTS,   /* another type has this id */
        CPN_TICKET_TYPE_SAME,     /* a type with these very fields exists: a repeated create */
        CPN_TICKET_TYPE_PARTIAL,  /* MySQL has it, Redis could not be written */
        CPN_TICKET_SOLD_OUT,      /* nothing available now */
        CPN_TICKET_NOT_OPEN,      /* before starts_at or after ends_at */
        CPN_TICKET_HELD,          /* the user holds a live ticket of the type already */
        CPN_TICKET_NOT_FOUND,
        CPN_TICKET_NOT_PENDING,   /* a cancel of a ticket that is not PENDING */
        CPN_TICKET_AMOUNT_MISMATCH,
        CPN_TICKET_DECLINED,      /* the gateway declined the card */
        CPN_TICKET_HOLD_EXPIRED,  /* the hold ended before the payment could be recorded */
        CPN_TICKET_ALREADY_PAID,  /* paid with another payment key */
        CPN_TICKET_PAYMENT_UNKNOWN, /* the gateway did not answer in time */
        CPN_TICKET_PAYMENT_DISABLED, /* no COUPON_PAYMENT_URL */
        CPN_TICKET_GATEWAY_DOWN,  /* the gateway refused the call or could not be reached: nothing charged */
};

#define CPN_TICKET_TOTAL_MAX 10000000LL  /* 10^7 tickets of a type */
#define CPN_PRICE_MAX 1000000000000LL    /* 10^12 minor units */
#define CPN_HOLD_MIN_S 10
#define CPN_HOLD_MAX_S 86400
#define CPN_HOLD_DEFAULT_S 600
#define CPN_TICKET_ID_LEN 36             /* a UUID v4, lower case */
#define CPN_PAYMENT_KEY_MAX 200

struct cpn_ticket_type {
        char id[CPN_ID_MAX + 1];
        char name[CPN_NAME_BYTES];
        int64_t price;       /* minor units, 0..CPN_PRICE_MAX */
        char currency[4];    /* ISO 4217: three upper-case letters */
        int64_t total;       /* 1..CPN_TICKET_TOTAL_MAX */
        int64_t hold_s;      /* CPN_HOLD_MIN_S..CPN_HOLD_MAX_S */
        int64_t starts_at_ms;
        int64_t ends_at_ms;  /* CPN_TIME_NEVER = never */
        bool starts_now;     /* the create gave no starts_at: any stored start matches */
};

/* A type and its stock as MySQL counts it at @now_ms. */
struct cpn_ticket_type_state {
        struct cpn_ticket_type t;
        int64_t held; /* PENDING and not expired */
        int64_t sold; /* PAID + CONFIRMED */
        int64_t now_ms;
};

enum cpn_ticket_phase { CPN_TICKET_SCHEDULED, CPN_TICKET_OPEN, CPN_TICKET_SOLD_OUT_PHASE, CPN_TICKET_ENDED };
enum cpn_ticket_phase cpn_ticket_type_phase(const struct cpn_ticket_type_state *st);
const char *cpn_ticket_phase_name(enum cpn_ticket_phase p);

enum cpn_ticket_status {
        CPN_TS_PENDING,
        CPN_TS_PAID,
        CPN_TS_CONFIRMED,
        CPN_TS_EXPIRED,
        CPN_TS_CANCELLED,
        CPN_TS_REFUNDED,
        _CPN_TS_N,
};
const char *cpn_ticket_status_name(enum cpn_ticket_status s);
/* Returns the status of @name (as MySQL stores it), or -1. */
int cpn_ticket_status_parse(const char *name);

struct cpn_ticket {
        char id[CPN_TICKET_ID_LEN + 1];
        char type_id[CPN_ID_MAX + 1];
        char user_id[CPN_ID_MAX + 1];
        enum cpn_ticket_status status;
        int64_t price;
        char currency[4];
        int64_t expires_at_ms;
        int64_t paid_at_ms;      /* -1: not (yet) */
        int64_t confirmed_at_ms; /* -1: not (yet) */
};

/* Redis key of a type's @part ("meta", "users"): ticket:{<id>}:<part>, the
 * id as the hash tag. Returns the length or -ENOBUFS. */
int cpn_ticket_key(char *buf, size_t n, const char *type_id, const char *part);

/* Whether @s is 3 upper-case ASCII letters. */
bool cpn_currency_valid(const char *s, size_t len);
/* Whether @s[0..len) is a payment key: 1..200 of [A-Za-z0-9_.:-]. */
bool cpn_payment_key_valid(const char *s, size_t len);

/* The body of POST /v1/ticket-types: id, name, price, currency, total,
 * hold_seconds (default 600), starts_at (default @now_ms), ends_at
 * (default never, after starts_at). Returns 0 or CPN_INVALID (the reason,
 * fit for the client, in @err). */
int cpn_ticket_type_parse(const char *body, size_t n, int64_t now_ms, struct cpn_ticket_type *out,
                          struct cpn_error *err);
/* The answer of GET /v1/ticket-types/{id}. Returns the length or -ENOBUFS. */
int cpn_ticket_type_json(char *buf, size_t n, const struct cpn_ticket_type_state *st);
/* Whether two types are the same create (@c->starts_now: any start). */
bool cpn_ticket_type_same(const struct cpn_ticket_type *stored, const struct cpn_ticket_type *c);

/* The body of a reservation: {"user_id":"..."}. Returns 0 or CPN_INVALID. */
int cpn_ticket_parse_reserve(const char *body, size_t n, char *user_id, struct cpn_error *err);
/* The body of a payment: {"payment_key":"...","amount":N}. Returns 0 or
 * CPN_INVALID. @key needs CPN_PAYMENT_KEY_MAX + 1 bytes. */
int cpn_ticket_parse_payment(const char *body, size_t n, char *key, int64_t *amount, struct cpn_error *err);
/* The answer for a ticket. Returns the length or -ENOBUFS. */
int cpn_ticket_json(char *buf, size_t n, const struct cpn_ticket *t);

/* A ticket.paid event (the outbox row's payload, Kafka's value). */
struct cpn_ticket_event {
        char event_id[CPN_TICKET_ID_LEN + 1];
        char ticket_id[CPN_TICKET_ID_LEN + 1];
        char type_id[CPN_ID_MAX + 1];
        char user_id[CPN_ID_MAX + 1];
        int64_t amount;
        char currency[4];
        char payment_key[CPN_PAYMENT_KEY_MAX + 1];
        int64_t paid_at_ms;
};
#define CPN_TICKET_EVENT_MAX 4096 /* bytes; a larger message is not one */
/* Decodes @buf[0..n): "v" 1, "type" "ticket.paid", every field of the
 * event in its grammar; other members are tolerated (a newer coupon-api
 * may add some). Returns 0 or CPN_INVALID (why, in valid UTF-8, in @err). */
int cpn_ticket_event_parse(const char *buf, size_t n, struct cpn_ticket_event *out, struct cpn_error *err);
