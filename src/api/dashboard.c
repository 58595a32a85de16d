/* The dashboard's routes: see dashboard.h. */
#include <string.h>

#include "dashboard.h"

struct cpn_embedded {
        const char *name;
        const char *text;
};
extern const struct cpn_embedded cpn_dash_files[]; /* dashboard_embedded.c, made by cpn-embed */

/* The page may run only its own script and style and talk only to this
 * server; nothing may frame it (its login form). */
static const char page_headers[] =
        "Content-Security-Policy: default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'\r\n"
        "X-Content-Type-Options: nosniff\r\n"
        "X-Frame-Options: DENY\r\n"
        "Referrer-Policy: no-referrer\r\n";

static const struct cpn_embedded *asset(const char *name) {
        for (const struct cpn_embedded *e = cpn_dash_files; e->name; e++)
                if (!strcmp(e->name, name))
                        return e;
        return NULL;
}

static void answer_asset(struct cpn_response *rs, const char *name, const char *type, const char *cache) {
        const struct cpn_embedded *e = asset(name);

        if (!e) { /* the build embeds every one: a bug */
                cpn_response_error(rs, CPN_E_INTERNAL, "asset missing from the build");
                return;
        }
        cpn_response_blob(rs, 200, type, cache, page_headers, e->text, strlen(e->text), NULL, NULL);
}

static void handle_page(void *thread, const struct cpn_request *rq, struct cpn_response *rs) {
        (void)thread;
        (void)rq;
        answer_asset(rs, "index.html", "text/html; charset=utf-8", "no-store");
}

static void handle_script(void *thread, const struct cpn_request *rq, struct cpn_response *rs) {
        (void)thread;
        (void)rq;
        answer_asset(rs, "app.js", "text/javascript; charset=utf-8", "no-cache");
}

static void handle_style(void *thread, const struct cpn_request *rq, struct cpn_response *rs) {
        (void)thread;
        (void)rq;
        answer_asset(rs, "app.css", "text/css; charset=utf-8", "no-cache");
}

/* Chart.js changes only with the package, which changes the binary. */
static void handle_chart(void *thread, const struct cpn_request *rq, struct cpn_response *rs) {
        (void)thread;
        (void)rq;
        answer_asset(rs, "chart.min.js", "text/javascript; charset=utf-8", "max-age=3600");
}

static void view_done(void *ud) {
        cpn_monitor_view_put(ud);
}

static void handle_data(void *thread, const struct cpn_request *rq, struct cpn_response *rs) {
        struct cpn_dashboard *d = thread;
        struct cpn_monitor_view *v;

        if (!d->cfg->admin_token) {
                cpn_response_error(rs, CPN_E_ADMIN_DISABLED, NULL);
                return;
        }
        if (!cpn_http_bearer_ok(rq->authorization, d->cfg->admin_token)) {
                cpn_response_error(rs, CPN_E_UNAUTHORIZED, NULL);
                return;
        }
        v = cpn_monitor_view_get(d->monitor);
        if (!v) { /* the first second after start */
                cpn_response_error(rs, CPN_E_UNAVAILABLE, "the monitor has not read the sale yet");
                return;
        }
        cpn_response_blob(rs, 200, NULL, NULL, NULL, v->json, v->json_len, view_done, v);
}

static const struct cpn_route routes[] = {
        { "GET", "/dashboard", "dashboard", 0, handle_page, NULL },
        { "GET", "/dashboard/app.js", "dashboard_asset", 0, handle_script, NULL },
        { "GET", "/dashboard/app.css", "dashboard_style", 0, handle_style, NULL },
        { "GET", "/dashboard/chart.min.js", "dashboard_chart", 0, handle_chart, NULL },
        { "GET", "/v1/dashboard", "dashboard_data", 0, handle_data, NULL },
};

/* Every thread shares the one dashboard: its handlers keep no state. */
static int thread_new(void **ret, void *data) {
        *ret = data;
        return 0;
}

static void metrics(void *data, FILE *f) {
        struct cpn_dashboard *d = data;
        struct cpn_monitor_view *v = cpn_monitor_view_get(d->monitor);

        if (!v)
                return;
        fwrite(v->prom, 1, v->prom_len, f);
        cpn_monitor_view_put(v);
}

struct cpn_http_product cpn_dashboard_http_product(struct cpn_dashboard *d) {
        return (struct cpn_http_product){
                .name = "dashboard",
                .routes = routes,
                .n_routes = sizeof(routes) / sizeof(routes[0]),
                .data = d,
                .thread_new = thread_new,
                .metrics = metrics,
        };
}
