/* The payment gateway's client (gateway.h); the only file that sees libcurl. */
#include <curl/curl.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cpn/json.h"
#include "cpn/ticket/gateway.h"

#define ANSWER_MAX 16384 /* a payment object is far smaller: a larger answer is not one */

struct cpn_gateway {
        CURL *curl;            /* owned; keeps its connection between calls */
        char *base;            /* owned, without a trailing '/' */
        char *userpwd;         /* owned: "<secret>:" */
        long timeout_ms;
        char answer[ANSWER_MAX + 1];
        size_t answer_len;
        bool answer_too_long;
};

int cpn_gateway_global_init(void) {
        return curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? 0 : -EIO;
}

int cpn_gateway_new(struct cpn_gateway **ret, const char *base_url, const char *secret, long timeout_ms) {
        struct cpn_gateway *g = calloc(1, sizeof(*g));
        size_t n;

        if (!g)
                return -ENOMEM;
        g->base = strdup(base_url);
        g->userpwd = malloc(strlen(secret) + 2);
        g->curl = curl_easy_init();
        if (!g->base || !g->userpwd || !g->curl) {
                cpn_gateway_free(g);
                return -ENOMEM;
        }
        n = strlen(g->base);
        while (n > 0 && g->base[n - 1] == '/')
                g->base[--n] = '\0';
        sprintf(g->userpwd, "%s:", secret);
        g->timeout_ms = timeout_ms;
        *ret = g;
        return 0;
}

struct cpn_gateway *cpn_gateway_free(struct cpn_gateway *g) {
        if (g) {
                if (g->curl)
                        curl_easy_cleanup(g->curl);
                if (g->userpwd) {
                        memset(g->userpwd, 0, strlen(g->userpwd)); /* the secret */
                        free(g->userpwd);
                }
                free(g->base);
                free(g);
        }
        return NULL;
}

static size_t on_data(char *p, size_t size, size_t nmemb, void *ud) {
        struct cpn_gateway *g = ud;
        size_t n = size * nmemb;

        if (g->answer_len + n > ANSWER_MAX) {
                g->answer_too_long = true;
                return 0; /* aborts the transfer */
        }
        memcpy(g->answer + g->answer_len, p, n);
        g->answer_len += n;
        return n;
}

/* The payment object of a 200, or {"code","message"} of an error. */
static void parse_answer(struct cpn_gateway *g, struct cpn_gw_answer *out) {
        struct cpn_json o;
        const char *s;
        size_t len;

        if (cpn_json_object(&o, g->answer, g->answer_len, NULL, NULL) != 0)
                return;
        if (cpn_json_string(&o, "paymentKey", &s, &len) == 0 && len <= CPN_PAYMENT_KEY_MAX)
                memcpy(out->payment_key, s, len + 1);
        if (cpn_json_int(&o, "totalAmount", 0, CPN_PRICE_MAX, &out->total_amount) != 0)
                out->total_amount = -1;
        if (cpn_json_string(&o, "status", &s, &len) == 0) {
                if (strcmp(s, "DONE") == 0)
                        out->result = CPN_GW_DONE;
                else if (strcmp(s, "CANCELED") == 0)
                        out->result = CPN_GW_CANCELED;
        }
        if (cpn_json_string(&o, "code", &s, &len) == 0)
                snprintf(out->code, sizeof(out->code), "%.*s", (int)len, s);
        if (cpn_json_string(&o, "message", &s, &len) == 0)
                snprintf(out->message, sizeof(out->message), "%.*s", (int)len, s);
        cpn_json_clear(&o);
}

/* One call; @body NULL is a GET. Fills @out's http_status and result
 * (UNREACHABLE, UNKNOWN, or from the answer). */
static int call(struct cpn_gateway *g, const char *path, const char *body, const char *idem,
                struct cpn_gw_answer *out) {
        struct curl_slist *hdrs = NULL, *h;
        char url[1024], idem_hdr[400];
        curl_off_t connect_us = 0;
        CURLcode rc;
        long status = 0;

        memset(out, 0, sizeof(*out));
        out->result = CPN_GW_UNKNOWN;
        out->total_amount = -1;
        if ((size_t)snprintf(url, sizeof(url), "%s%s", g->base, path) >= sizeof(url))
                return -ENAMETOOLONG;
        h = curl_slist_append(NULL, "Content-Type: application/json");
        if (h && idem) {
                snprintf(idem_hdr, sizeof(idem_hdr), "Idempotency-Key: %s", idem);
                hdrs = curl_slist_append(h, idem_hdr);
                if (!hdrs)
                        curl_slist_free_all(h);
        } else {
                hdrs = h;
        }
        if (!hdrs)
                return -ENOMEM;
        g->answer_len = 0;
        g->answer_too_long = false;
        curl_easy_reset(g->curl); /* keeps the connection cache */
        curl_easy_setopt(g->curl, CURLOPT_URL, url);
        curl_easy_setopt(g->curl, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(g->curl, CURLOPT_TIMEOUT_MS, g->timeout_ms);
        curl_easy_setopt(g->curl, CURLOPT_CONNECTTIMEOUT_MS, g->timeout_ms);
        curl_easy_setopt(g->curl, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
        curl_easy_setopt(g->curl, CURLOPT_USERPWD, g->userpwd);
        curl_easy_setopt(g->curl, CURLOPT_HTTPHEADER, hdrs);
        curl_easy_setopt(g->curl, CURLOPT_WRITEFUNCTION, on_data);
        curl_easy_setopt(g->curl, CURLOPT_WRITEDATA, g);
        curl_easy_setopt(g->curl, CURLOPT_PROTOCOLS_STR, "http,https");
        curl_easy_setopt(g->curl, CURLOPT_FOLLOWLOCATION, 0L);
        if (body) {
                curl_easy_setopt(g->curl, CURLOPT_POSTFIELDS, body);
                curl_easy_setopt(g->curl, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
        }
        rc = curl_easy_perform(g->curl);
        curl_slist_free_all(hdrs);
        curl_easy_getinfo(g->curl, CURLINFO_RESPONSE_CODE, &status);
        curl_easy_getinfo(g->curl, CURLINFO_CONNECT_TIME_T, &connect_us);
        out->http_status = (int)status;
        if (rc != CURLE_OK) {
                /* Not connected: the request never left. Connected: it may
                 * have been read and acted on. */
                if (rc == CURLE_COULDNT_CONNECT || rc == CURLE_COULDNT_RESOLVE_HOST ||
                    rc == CURLE_COULDNT_RESOLVE_PROXY || rc == CURLE_SSL_CONNECT_ERROR ||
                    (rc == CURLE_OPERATION_TIMEDOUT && connect_us == 0))
                        out->result = CPN_GW_UNREACHABLE;
                snprintf(out->message, sizeof(out->message), "%s%s", curl_easy_strerror(rc),
                         g->answer_too_long ? " (answer too long)" : "");
                out->http_status = 0;
                return 0;
        }
        g->answer[g->answer_len] = '\0';
        parse_answer(g, out);
        return 0;
}

/* What a 4xx of a confirm means. */
static enum cpn_gw_result confirm_error(const struct cpn_gw_answer *a) {
        if (a->http_status == 401 || a->http_status == 422 || a->http_status == 429 ||
            (a->http_status == 400 && strcmp(a->code, "INVALID_REQUEST") == 0))
                return CPN_GW_REFUSED; /* the call itself, not the card: nothing was charged */
        if (a->http_status == 409)
                return CPN_GW_UNKNOWN; /* IDEMPOTENT_REQUEST_PROCESSING: the first is still running */
        return a->code[0] ? CPN_GW_DECLINED : CPN_GW_UNKNOWN;
}

int cpn_gateway_confirm(struct cpn_gateway *g, const char *payment_key, const char *order_id, int64_t amount,
                        const char *idem, struct cpn_gw_answer *out) {
        char body[512];
        int r;

        /* Both keys are validated to grammars that need no JSON escaping. */
        snprintf(body, sizeof(body), "{\"paymentKey\":\"%s\",\"orderId\":\"%s\",\"amount\":%lld}", payment_key,
                 order_id, (long long)amount);
        r = call(g, "/v1/payments/confirm", body, idem, out);
        if (r || out->http_status == 0)
                return r;
        if (out->http_status == 200)
                out->result = out->result == CPN_GW_DONE ? CPN_GW_DONE : CPN_GW_UNKNOWN;
        else if (out->http_status >= 400 && out->http_status < 500)
                out->result = confirm_error(out);
        else
                out->result = CPN_GW_UNKNOWN;
        return 0;
}

int cpn_gateway_cancel(struct cpn_gateway *g, const char *payment_key, const char *reason,
                       struct cpn_gw_answer *out) {
        char path[300], body[300], quoted[256];
        int r;

        snprintf(path, sizeof(path), "/v1/payments/%s/cancel", payment_key);
        if (cpn_json_quote(quoted, sizeof(quoted), reason) < 0)
                snprintf(quoted, sizeof(quoted), "\"cancelled\"");
        snprintf(body, sizeof(body), "{\"cancelReason\":%s}", quoted);
        r = call(g, path, body, NULL, out);
        if (r || out->http_status == 0)
                return r;
        if (out->http_status == 200)
                out->result = out->result == CPN_GW_CANCELED ? CPN_GW_CANCELED : CPN_GW_UNKNOWN;
        else if (out->http_status == 404)
                out->result = CPN_GW_NOT_FOUND;
        else if (out->http_status >= 400 && out->http_status < 500)
                out->result = CPN_GW_REFUSED;
        else
                out->result = CPN_GW_UNKNOWN;
        return 0;
}

int cpn_gateway_lookup(struct cpn_gateway *g, const char *order_id, struct cpn_gw_answer *out) {
        char path[128];
        int r;

        snprintf(path, sizeof(path), "/v1/payments/orders/%s", order_id);
        r = call(g, path, NULL, NULL, out);
        if (r || out->http_status == 0)
                return r;
        if (out->http_status == 200 && (out->result == CPN_GW_DONE || out->result == CPN_GW_CANCELED))
                return 0;
        if (out->http_status == 404)
                out->result = CPN_GW_NOT_FOUND;
        else if (out->http_status >= 400 && out->http_status < 500)
                out->result = CPN_GW_REFUSED;
        else
                out->result = CPN_GW_UNKNOWN;
        return 0;
}
