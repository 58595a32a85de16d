#pragma once
/*
 * The ticket product's HTTP routes (src/ticket/handlers.c): create and
 * read ticket types (create is an admin route), reserve, read and cancel
 * tickets. Each handler parses and validates, makes one call of the
 * ticket service and maps its result through the product's rows of the
 * outcome table; its counters of reservation outcomes join /metrics.
 */
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>

#include "cpn/config.h"
#include "cpn/http.h"
#include "cpn/ticket/outbox.h"
#include "cpn/ticket/reaper.h"
#include "cpn/ticket/service.h"

enum cpn_reserve_outcome {
        CPN_RESERVE_RESERVED,
        CPN_RESERVE_HELD,
        CPN_RESERVE_SOLD_OUT,
        CPN_RESERVE_NOT_OPEN,
        CPN_RESERVE_NOT_FOUND,
        CPN_RESERVE_INVALID,
        CPN_RESERVE_UNAVAILABLE,
        CPN_RESERVE_UNKNOWN,
        _CPN_RESERVE_N,
};

/* The product's shared state: created by main before the server, freed
 * after it. */
struct cpn_ticket_http {
        const struct cpn_config *cfg;
        struct cpn_ticket_service *svc; /* borrowed; NULL only where no handler gets past validation */
        struct cpn_ticket_reaper *reaper; /* borrowed, may be NULL: its count joins /metrics */
        struct cpn_ticket_relay *relay;   /* borrowed, may be NULL: likewise */
        _Atomic uint64_t reserve[_CPN_RESERVE_N];
        _Atomic uint64_t cancelled;
        _Atomic uint64_t pay[5]; /* paid, declined, hold expired, unknown, other refusals */
};

/* What the server needs of the product; @th is borrowed. */
struct cpn_http_product cpn_ticket_http_product(struct cpn_ticket_http *th);

/* The product's own answer for a ticket outcome code (ticket.h), or NULL. */
const struct cpn_api_error_info *cpn_ticket_answer(int r);
