/* The kernel's own routes through the public API: kernel://stats,
 * kernel://routes and kernel://actors, served by the introspection built-in
 * once attached, answer hy_ask with JSON that is valid and carries the right
 * figures; the name "kernel" stays reserved. Also what introspection is built
 * on: hy_subsystems_list and hy_kernel_routes_add. Each test opens its own
 * kernel. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hypha.h"
#include "hypha_ext.h"

/* A kernel without introspection. */
static hy_kernel *open_bare(unsigned workers)
{
    hy_kernel *k = NULL;
    hy_config cfg = {.workers = workers};
    assert_int_equal(hy_kernel_open(&k, &cfg), 0);
    return k;
}

/* A kernel with introspection attached. */
static hy_kernel *open_kernel(unsigned workers)
{
    hy_kernel *k = open_bare(workers);
    assert_int_equal(hy_introspect_attach(k, NULL), 0);
    return k;
}

static int ok_handler(hy_ctx *ctx, const hy_msg *msg)
{
    (void)ctx;
    (void)msg;
    return 0;
}

static void register_routes(hy_kernel *k, const char *name, const char *const *patterns,
                            size_t n, const char *key)
{
    hy_route r[8];
    assert_true(n <= 8);
    for (size_t i = 0; i < n; i++)
        r[i] = (hy_route){.pattern = patterns[i], .handler = ok_handler, .key = key};
    hy_subsystem_def def = {.routes = r, .nroutes = n};
    int rc = hy_subsystem_register(k, name, &def);
    if (rc != 0)
        fail_msg("register %s: %s: %s", name, hy_strerror(rc), hy_errdetail());
}

/* ------------------------------------------------------------ a small JSON check */

/* A strict-enough recursive-descent validator: objects, arrays, strings with
 * escapes, numbers, true/false/null; no control characters inside strings. */
static const char *json_value(const char *p);

static const char *json_ws(const char *p)
{
    while (*p == ' ' || *p == '\n' || *p == '\t' || *p == '\r')
        p++;
    return p;
}

static const char *json_string(const char *p)
{
    if (*p++ != '"')
        return NULL;
    for (; *p != '"'; p++) {
        if ((unsigned char)*p < 0x20)
            return NULL;
        if (*p == '\\') {
            p++;
            if (*p == 'u') {
                for (int i = 1; i <= 4; i++)
                    if (!strchr("0123456789abcdefABCDEF", p[i]) || !p[i])
                        return NULL;
                p += 4;
            } else if (!*p || !strchr("\"\\/bfnrt", *p)) {
                return NULL;
            }
        }
    }
    return p + 1;
}

static const char *json_number(const char *p)
{
    char *end;
    strtod(p, &end);
    return end == p ? NULL : end;
}

static const char *json_seq(const char *p, char close, bool keys)
{
    p = json_ws(p + 1);
    if (*p == close)
        return p + 1;
    for (;;) {
        if (keys) {
            p = json_string(json_ws(p));
            if (!p || *(p = json_ws(p)) != ':')
                return NULL;
            p++;
        }
        p = json_value(p);
        if (!p)
            return NULL;
        p = json_ws(p);
        if (*p == close)
            return p + 1;
        if (*p++ != ',')
            return NULL;
    }
}

static const char *json_value(const char *p)
{
    p = json_ws(p);
    switch (*p) {
    case '{': return json_seq(p, '}', true);
    case '[': return json_seq(p, ']', false);
    case '"': return json_string(p);
    case 't': return strncmp(p, "true", 4) ? NULL : p + 4;
    case 'f': return strncmp(p, "false", 5) ? NULL : p + 5;
    case 'n': return strncmp(p, "null", 4) ? NULL : p + 4;
    default: return json_number(p);
    }
}

static bool json_valid(const char *s)
{
    const char *end = json_value(s);
    return end && *json_ws(end) == '\0';
}

/* Ask a kernel route; the reply as a NUL-terminated string the caller frees,
 * checked to be valid JSON. */
static char *ask_json(hy_kernel *k, const char *path)
{
    void *reply = NULL;
    size_t len = 0;
    int rc = hy_ask(k, path, NULL, 0, &reply, &len, 10000);
    if (rc != 0)
        fail_msg("ask %s: %s: %s", path, hy_strerror(rc), hy_errdetail());
    char *s = malloc(len + 1);
    assert_non_null(s);
    memcpy(s, reply, len);
    s[len] = '\0';
    hy_free(reply);
    if (!json_valid(s))
        fail_msg("%s answered invalid JSON: %s", path, s);
    return s;
}

/* The number after "key": in json (searched from `from`), or -1. */
static long long json_num(const char *from, const char *key)
{
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\":", key);
    const char *at = strstr(from, pat);
    long long v = -1;
    if (at)
        sscanf(at + strlen(pat), "%lld", &v);
    return v;
}

/* The per-subsystem object of `name` in a kernel://stats or actors reply. */
static const char *subsystem_entry(const char *json, const char *name)
{
    char pat[96];
    snprintf(pat, sizeof pat, "{\"name\":\"%s\",", name);
    const char *at = strstr(json, pat);
    if (!at)
        fail_msg("no entry for '%s' in %s", name, json);
    return at;
}

/* ------------------------------------------------------------ kernel://stats */

#define SENDS 100

static void stats_reports_sends_and_handled(void **state)
{
    (void)state;
    hy_kernel *k = open_kernel(2);
    static const char *const patterns[] = {"item/{id}"};
    register_routes(k, "orders", patterns, 1, NULL);
    for (int i = 0; i < SENDS; i++)
        assert_int_equal(hy_send(k, "orders://item/7", NULL, 0), 0);
    assert_int_equal(hy_kernel_drain(k, 10000), 0);
    char *json = ask_json(k, "kernel://stats");
    const char *orders = subsystem_entry(json, "orders");
    assert_int_equal(json_num(orders, "sent"), SENDS);
    assert_int_equal(json_num(orders, "handled"), SENDS);
    assert_int_equal(json_num(orders, "failed"), 0);
    assert_int_equal(json_num(orders, "queued"), 0);
    assert_int_equal(json_num(orders, "actors"), 1);
    /* Totals: the stats request itself is sent and being handled. */
    assert_int_equal(json_num(json, "sent"), SENDS + 1);
    assert_int_equal(json_num(json, "handled"), SENDS);
    assert_int_equal(json_num(json, "queued"), 1);
    assert_int_equal(json_num(json, "subsystems"), 1);
    assert_int_equal(json_num(json, "workers"), 2);
    assert_true(json_num(json, "created") > 0); /* pool figures are there */
    assert_non_null(strstr(json, "\"reuse_rate\":"));
    free(json);
    hy_kernel_close(k);
}

static void stats_counts_dead_letters_by_reason_name(void **state)
{
    (void)state;
    hy_kernel *k = open_kernel(2);
    static const char *const patterns[] = {"item/{id}"};
    register_routes(k, "orders", patterns, 1, NULL);
    assert_int_equal(hy_send(k, "orders://nothing/here", NULL, 0), HY_ENOROUTE);
    assert_int_equal(hy_send(k, "nosuch://x", NULL, 0), HY_ENOROUTE);
    assert_int_equal(hy_kernel_drain(k, 10000), 0);
    char *json = ask_json(k, "kernel://stats");
    const char *dead = strstr(json, "\"dead\":{");
    assert_non_null(dead);
    assert_int_equal(json_num(dead, "noroute"), 2);
    assert_int_equal(json_num(dead, "failed"), 0);
    assert_int_equal(json_num(dead, "late_reply"), 0);
    free(json);
    hy_kernel_close(k);
}

/* ------------------------------------------------------------ kernel://routes */

static void routes_lists_registered_patterns_in_order(void **state)
{
    (void)state;
    hy_kernel *k = open_kernel(2);
    static const char *const orders[] = {"item/{id:\\d+}", "create", "files/**"};
    static const char *const users[] = {"", "{name}/profile"};
    register_routes(k, "orders", orders, 3, NULL);
    register_routes(k, "users", users, 2, NULL);
    char *json = ask_json(k, "kernel://routes");
    /* The regex's backslash is escaped in JSON. */
    assert_non_null(strstr(json, "{\"name\":\"orders\",\"routes\":"
                                 "[\"item/{id:\\\\d+}\",\"create\",\"files/**\"],"
                                 "\"scopes\":[null,null,null],"
                                 "\"read_only\":[false,false,false]}"));
    assert_non_null(strstr(json, "{\"name\":\"users\",\"routes\":[\"\",\"{name}/profile\"],"
                                 "\"scopes\":[null,null],\"read_only\":[false,false]}"));
    assert_non_null(strstr(json, "{\"name\":\"kernel\",\"routes\":"
                                 "[\"stats\",\"routes\",\"actors\"],"
                                 "\"scopes\":[null,null,null],"
                                 "\"read_only\":[false,false,false]}"));
    free(json);
    hy_kernel_close(k);
}

static void routes_mark_read_only_routes(void **state)
{
    (void)state;
    hy_kernel *k = open_kernel(2);
    hy_route r[3] = {
        {.pattern = "{id}/total", .handler = ok_handler, .read_only = 1},
        {.pattern = "{id}/add", .handler = ok_handler},
        {.pattern = "{id}/status", .handler = ok_handler, .read_only = 1},
    };
    hy_subsystem_def def = {.routes = r, .nroutes = 3};
    assert_int_equal(hy_subsystem_register(k, "orders", &def), 0);
    hy_subsystem_info *subs;
    size_t n;
    assert_int_equal(hy_subsystems_list(k, &subs, &n), 0);
    const hy_subsystem_info *orders = NULL;
    for (size_t i = 0; i < n; i++)
        if (strcmp(subs[i].name, "orders") == 0)
            orders = &subs[i];
    assert_non_null(orders);
    assert_int_equal(orders->nroutes, 3);
    for (size_t i = 0; i < 3; i++)
        assert_int_equal(orders->read_only[i], r[i].read_only);
    hy_free(subs);
    char *json = ask_json(k, "kernel://routes");
    assert_non_null(strstr(json, "\"routes\":[\"{id}/total\",\"{id}/add\",\"{id}/status\"],"
                                 "\"scopes\":[null,null,null],"
                                 "\"read_only\":[true,false,true]}"));
    free(json);
    hy_kernel_close(k);
}

static void routes_escapes_quotes_in_patterns(void **state)
{
    (void)state;
    hy_kernel *k = open_kernel(1);
    static const char *const patterns[] = {"say/\"hi\"", "{q:[\"x]+}"};
    register_routes(k, "echo", patterns, 2, NULL);
    char *json = ask_json(k, "kernel://routes"); /* checked valid JSON */
    assert_non_null(strstr(json, "\"say/\\\"hi\\\"\""));
    assert_non_null(strstr(json, "\"{q:[\\\"x]+}\""));
    free(json);
    hy_kernel_close(k);
}

/* ------------------------------------------------------------ kernel://actors */

static void actors_counts_keyed_actors_per_subsystem(void **state)
{
    (void)state;
    hy_kernel *k = open_kernel(2);
    static const char *const keyed[] = {"item/{id}"};
    static const char *const plain[] = {"ping"};
    register_routes(k, "orders", keyed, 1, "id");
    register_routes(k, "misc", plain, 1, NULL);
    char path[64];
    for (int i = 0; i < 10; i++) {
        snprintf(path, sizeof path, "orders://item/%d", i);
        assert_int_equal(hy_send(k, path, NULL, 0), 0);
        assert_int_equal(hy_send(k, path, NULL, 0), 0); /* same key, same actor */
    }
    assert_int_equal(hy_kernel_drain(k, 10000), 0);
    char *json = ask_json(k, "kernel://actors");
    const char *orders = subsystem_entry(json, "orders");
    assert_int_equal(json_num(orders, "actors"), 11);
    assert_int_equal(json_num(orders, "keyed"), 10);
    assert_int_equal(json_num(subsystem_entry(json, "misc"), "actors"), 1);
    assert_int_equal(json_num(subsystem_entry(json, "kernel"), "actors"), 1);
    assert_int_equal(json_num(strstr(json, "\"total\""), "total"), 13);
    free(json);
    hy_kernel_close(k);
}

static void actors_counts_subscriptions_under_kernel(void **state)
{
    (void)state;
    hy_kernel *k = open_kernel(2);
    uint64_t id;
    assert_int_equal(hy_subscribe(k, "news://a", ok_handler, NULL, &id), 0);
    assert_int_equal(hy_subscribe(k, "news://b", ok_handler, NULL, NULL), 0);
    assert_int_equal(hy_unsubscribe(k, id), 0);
    char *json = ask_json(k, "kernel://actors");
    const char *kern = subsystem_entry(json, "kernel");
    assert_int_equal(json_num(kern, "keyed"), 1);
    assert_int_equal(json_num(kern, "actors"), 2);
    free(json);
    hy_kernel_close(k);
}

/* ------------------------------------------------------------ the subsystem */

static void registering_kernel_is_still_refused(void **state)
{
    (void)state;
    hy_kernel *k = open_kernel(1);
    hy_route r = {.pattern = "stats", .handler = ok_handler};
    hy_subsystem_def def = {.routes = &r, .nroutes = 1};
    assert_int_equal(hy_subsystem_register(k, "kernel", &def), HY_EEXIST);
    assert_non_null(strstr(hy_errdetail(), "reserved"));
    hy_kernel_close(k);
}

static void kernel_routes_resolve_like_any_route(void **state)
{
    (void)state;
    hy_kernel *k = open_kernel(1);
    hy_match_result m;
    assert_int_equal(hy_match(k, "kernel://stats", &m), 0);
    assert_string_equal(m.subsystem, "kernel");
    assert_string_equal(m.pattern, "stats");
    assert_int_equal(hy_match(k, "kernel://nothing", &m), HY_ENOROUTE);
    void *reply = NULL;
    assert_int_equal(hy_ask(k, "kernel://nothing", NULL, 0, &reply, NULL, 1000), HY_ENOROUTE);
    assert_null(reply);
    hy_kernel_close(k);
}

static void fresh_kernel_counts_no_subsystems_or_actors(void **state)
{
    (void)state;
    hy_kernel *k = open_kernel(1);
    hy_stats st;
    assert_int_equal(hy_kernel_stats(k, &st), 0);
    assert_int_equal(st.subsystems, 0); /* the internal one is not counted */
    assert_int_equal(st.actors, 0);
    assert_int_equal(st.sent, 0);
    hy_kernel_close(k);
}

static void plain_send_to_a_kernel_route_is_handled(void **state)
{
    (void)state;
    hy_kernel *k = open_kernel(1);
    assert_int_equal(hy_send(k, "kernel://stats", NULL, 0), 0);
    assert_int_equal(hy_kernel_drain(k, 10000), 0);
    hy_subsystem_stats ss;
    assert_int_equal(hy_subsystem_stats_get(k, "kernel", &ss), 0);
    assert_int_equal(ss.sent, 1);
    assert_int_equal(ss.handled, 1); /* nobody to answer is not a failure */
    assert_int_equal(ss.failed, 0);
    hy_kernel_close(k);
}

/* ------------------------------------------------------------ attaching */

static void without_attach_kernel_stats_is_no_route(void **state)
{
    (void)state;
    hy_kernel *k = open_bare(1);
    void *reply = NULL;
    assert_int_equal(hy_ask(k, "kernel://stats", NULL, 0, &reply, NULL, 1000), HY_ENOROUTE);
    assert_null(reply);
    assert_int_equal(hy_send(k, "kernel://actors", NULL, 0), HY_ENOROUTE);
    hy_kernel_close(k);
}

static void attaching_twice_is_exist(void **state)
{
    (void)state;
    hy_kernel *k = open_kernel(1);
    assert_int_equal(hy_introspect_attach(k, NULL), HY_EEXIST);
    assert_non_null(strstr(hy_errdetail(), "'stats'"));
    free(ask_json(k, "kernel://stats")); /* the first attach still serves */
    hy_kernel_close(k);
}

static void attaching_to_a_null_kernel_is_invalid(void **state)
{
    (void)state;
    assert_int_equal(hy_introspect_attach(NULL, NULL), HY_EINVAL);
    hy_introspect_opts opts = {.routes = HY_INTROSPECT_STATS};
    assert_int_equal(hy_introspect_attach(NULL, &opts), HY_EINVAL);
}

static void attaching_with_unknown_route_bits_is_invalid(void **state)
{
    (void)state;
    hy_kernel *k = open_bare(1);
    hy_introspect_opts opts = {.routes = HY_INTROSPECT_STATS | 64u};
    assert_int_equal(hy_introspect_attach(k, &opts), HY_EINVAL);
    hy_match_result m;
    assert_int_equal(hy_match(k, "kernel://stats", &m), HY_ENOROUTE); /* none added */
    hy_kernel_close(k);
}

static void attaching_after_shutdown_is_closed(void **state)
{
    (void)state;
    hy_kernel *k = open_bare(1);
    assert_int_equal(hy_kernel_shutdown(k), 0);
    assert_int_equal(hy_introspect_attach(k, NULL), HY_ECLOSED);
    hy_kernel_close(k);
}

static void attaching_only_stats_serves_stats_and_not_routes(void **state)
{
    (void)state;
    hy_kernel *k = open_bare(1);
    hy_introspect_opts opts = {.routes = HY_INTROSPECT_STATS};
    assert_int_equal(hy_introspect_attach(k, &opts), 0);
    char *json = ask_json(k, "kernel://stats");
    assert_non_null(strstr(json, "\"per_subsystem\":["));
    free(json);
    void *reply = NULL;
    assert_int_equal(hy_ask(k, "kernel://routes", NULL, 0, &reply, NULL, 1000), HY_ENOROUTE);
    assert_int_equal(hy_ask(k, "kernel://actors", NULL, 0, &reply, NULL, 1000), HY_ENOROUTE);
    assert_null(reply);
    hy_kernel_close(k);
}

/* ------------------------------------------------------------ hy_subsystems_list */

static void subsystems_list_gives_names_routes_and_the_figures_of_stats_get(void **state)
{
    (void)state;
    hy_kernel *k = open_bare(2);
    static const char *const orders[] = {"item/{id}", "{id}/create", "files/{id}/**"};
    register_routes(k, "orders", orders, 3, "id");
    hy_route r = {.pattern = "{user}", .handler = ok_handler, .key = "user"};
    hy_subsystem_def def = {.routes = &r, .nroutes = 1, .passivate = hy_passivate_discard,
                            .idle_timeout_ms = 60000, .max_active_actors = 50};
    assert_int_equal(hy_subsystem_register(k, "users", &def), 0);
    for (int i = 0; i < 5; i++)
        assert_int_equal(hy_send(k, i % 2 ? "orders://item/1" : "orders://item/2", NULL, 0), 0);
    assert_int_equal(hy_send(k, "users://ann", NULL, 0), 0);
    assert_int_equal(hy_kernel_drain(k, 10000), 0);

    hy_subsystem_info *list = NULL;
    size_t n = 0;
    assert_int_equal(hy_subsystems_list(k, &list, &n), 0);
    assert_int_equal(n, 3);
    /* Newest registered first; the kernel's own, made at open, last. */
    assert_string_equal(list[0].name, "users");
    assert_string_equal(list[1].name, "orders");
    assert_string_equal(list[2].name, "kernel");
    assert_int_equal(list[0].internal, 0);
    assert_int_equal(list[1].internal, 0);
    assert_int_equal(list[2].internal, 1);
    assert_int_equal(list[2].nroutes, 0); /* introspection is not attached */
    assert_int_equal(list[1].nroutes, 3);
    for (size_t i = 0; i < 3; i++)
        assert_string_equal(list[1].routes[i], orders[i]);
    assert_int_equal(list[0].nroutes, 1);
    assert_string_equal(list[0].routes[0], "{user}");
    assert_int_equal(list[0].idle_timeout_ms, 60000);
    assert_int_equal(list[0].max_active, 50);
    assert_int_equal(list[1].idle_timeout_ms, 0); /* cannot passivate: no policy */
    assert_int_equal(list[1].max_active, 0);
    for (size_t i = 0; i < n; i++) {
        hy_subsystem_stats ss;
        assert_int_equal(hy_subsystem_stats_get(k, list[i].name, &ss), 0);
        assert_memory_equal(&list[i].stats, &ss, sizeof ss);
    }
    assert_int_equal(list[1].stats.sent, 5);
    assert_int_equal(list[1].stats.handled, 5);
    assert_int_equal(list[1].stats.actors, 3); /* its own and keys 1, 2 */
    hy_free(list);
    hy_kernel_close(k);
}

static void subsystems_list_refuses_null_arguments(void **state)
{
    (void)state;
    hy_kernel *k = open_bare(1);
    hy_subsystem_info *list = (hy_subsystem_info *)&list; /* not NULL: must be reset */
    size_t n = 7;
    assert_int_equal(hy_subsystems_list(NULL, &list, &n), HY_EINVAL);
    assert_null(list);
    assert_int_equal(n, 0);
    assert_int_equal(hy_subsystems_list(k, NULL, &n), HY_EINVAL);
    assert_int_equal(hy_subsystems_list(k, &list, NULL), HY_EINVAL);
    hy_kernel_close(k);
}

/* ------------------------------------------------------------ hy_kernel_routes_add */

/* The patterns the "kernel" subsystem serves, per hy_subsystems_list. */
static size_t kernel_route_count(hy_kernel *k)
{
    hy_subsystem_info *list = NULL;
    size_t n = 0, routes = 0;
    assert_int_equal(hy_subsystems_list(k, &list, &n), 0);
    for (size_t i = 0; i < n; i++)
        if (list[i].internal)
            routes = list[i].nroutes;
    hy_free(list);
    return routes;
}

static void kernel_routes_add_serves_a_path_under_kernel(void **state)
{
    (void)state;
    hy_kernel *k = open_bare(1);
    size_t before = kernel_route_count(k);
    hy_route r[] = {{.pattern = "extra/{x}", .handler = ok_handler}};
    assert_int_equal(hy_kernel_routes_add(k, r, 1), 0);
    hy_match_result m;
    assert_int_equal(hy_match(k, "kernel://extra/1", &m), 0);
    assert_string_equal(m.subsystem, "kernel");
    assert_string_equal(m.pattern, "extra/{x}");
    assert_int_equal(kernel_route_count(k), before + 1);
    hy_kernel_close(k);
}

static void kernel_routes_add_refuses_a_bad_pattern_and_adds_none(void **state)
{
    (void)state;
    hy_kernel *k = open_bare(1);
    size_t before = kernel_route_count(k);
    hy_route r[] = {{.pattern = "good", .handler = ok_handler},
                    {.pattern = "bad/{x:[}", .handler = ok_handler}};
    assert_int_equal(hy_kernel_routes_add(k, r, 2), HY_EBADPATTERN);
    assert_non_null(strstr(hy_errdetail(), "bad/{x:[}"));
    hy_match_result m;
    assert_int_equal(hy_match(k, "kernel://good", &m), HY_ENOROUTE);
    assert_int_equal(kernel_route_count(k), before);
    hy_kernel_close(k);
}

static void kernel_routes_add_refuses_a_duplicate_and_adds_none(void **state)
{
    (void)state;
    hy_kernel *k = open_bare(1);
    hy_route first[] = {{.pattern = "dup", .handler = ok_handler}};
    assert_int_equal(hy_kernel_routes_add(k, first, 1), 0);
    size_t before = kernel_route_count(k);
    hy_route again[] = {{.pattern = "fresh", .handler = ok_handler},
                        {.pattern = "dup", .handler = ok_handler}};
    assert_int_equal(hy_kernel_routes_add(k, again, 2), HY_EEXIST);
    assert_non_null(strstr(hy_errdetail(), "'dup'"));
    hy_match_result m;
    assert_int_equal(hy_match(k, "kernel://fresh", &m), HY_ENOROUTE);
    assert_int_equal(kernel_route_count(k), before);
    hy_kernel_close(k);
}

static void kernel_routes_add_refuses_null_and_handlerless_routes(void **state)
{
    (void)state;
    hy_kernel *k = open_bare(1);
    hy_route r = {.pattern = "x", .handler = ok_handler};
    assert_int_equal(hy_kernel_routes_add(NULL, &r, 1), HY_EINVAL);
    assert_int_equal(hy_kernel_routes_add(k, NULL, 1), HY_EINVAL);
    r.handler = NULL;
    assert_int_equal(hy_kernel_routes_add(k, &r, 1), HY_EINVAL);
    hy_kernel_close(k);
}

static void kernel_routes_add_after_shutdown_is_closed(void **state)
{
    (void)state;
    hy_kernel *k = open_bare(1);
    assert_int_equal(hy_kernel_shutdown(k), 0);
    hy_route r = {.pattern = "late", .handler = ok_handler};
    assert_int_equal(hy_kernel_routes_add(k, &r, 1), HY_ECLOSED);
    hy_kernel_close(k);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(stats_reports_sends_and_handled),
        cmocka_unit_test(stats_counts_dead_letters_by_reason_name),
        cmocka_unit_test(routes_lists_registered_patterns_in_order),
        cmocka_unit_test(routes_mark_read_only_routes),
        cmocka_unit_test(routes_escapes_quotes_in_patterns),
        cmocka_unit_test(actors_counts_keyed_actors_per_subsystem),
        cmocka_unit_test(actors_counts_subscriptions_under_kernel),
        cmocka_unit_test(registering_kernel_is_still_refused),
        cmocka_unit_test(kernel_routes_resolve_like_any_route),
        cmocka_unit_test(fresh_kernel_counts_no_subsystems_or_actors),
        cmocka_unit_test(plain_send_to_a_kernel_route_is_handled),
        cmocka_unit_test(without_attach_kernel_stats_is_no_route),
        cmocka_unit_test(attaching_twice_is_exist),
        cmocka_unit_test(attaching_to_a_null_kernel_is_invalid),
        cmocka_unit_test(attaching_with_unknown_route_bits_is_invalid),
        cmocka_unit_test(attaching_after_shutdown_is_closed),
        cmocka_unit_test(attaching_only_stats_serves_stats_and_not_routes),
        cmocka_unit_test(subsystems_list_gives_names_routes_and_the_figures_of_stats_get),
        cmocka_unit_test(subsystems_list_refuses_null_arguments),
        cmocka_unit_test(kernel_routes_add_serves_a_path_under_kernel),
        cmocka_unit_test(kernel_routes_add_refuses_a_bad_pattern_and_adds_none),
        cmocka_unit_test(kernel_routes_add_refuses_a_duplicate_and_adds_none),
        cmocka_unit_test(kernel_routes_add_refuses_null_and_handlerless_routes),
        cmocka_unit_test(kernel_routes_add_after_shutdown_is_closed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
