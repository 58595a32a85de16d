#pragma once
/* Shared by the events module's files only. */
#include "cpn/config.h"
#include "cpn/error.h"

/* Applies bootstrap servers, client id and COUPON_KAFKA_CONFIG extras to a
 * rd_kafka_conf_t (passed as void * to keep librdkafka out of this header's
 * users). Returns 0, CPN_INVALID or -ENOMEM. */
int cpn_kafka_conf_apply(void *conf, const struct cpn_config *cfg, const char *client_id,
                         struct cpn_error *err);
