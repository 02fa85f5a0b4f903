/* Router unit tests: path rules and their boundaries, pattern syntax and every
 * registration error, precedence, backtracking, ties, captures, removal and
 * large tables. One behaviour per test; each starts from a fresh router. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "router.h"
#include "router_int.h" /* the fast regex path, checked against PCRE2 */

static int sub_orders, sub_files;

static hyi_router *mk(void)
{
    hyi_router *r;
    assert_int_equal(hyi_router_create(&r), 0);
    assert_int_equal(hyi_router_add_subsystem(r, "orders", &sub_orders), 0);
    return r;
}

static void add(hyi_router *r, const char *pattern, void *udata)
{
    hyi_route_error err = {0};
    int rc = hyi_router_add_route(r, "orders", pattern, udata, &err);
    if (rc)
        fail_msg("add \"%s\": %d %s at %ld", pattern, rc, err.message, err.offset);
}

/* Match a NUL-terminated path; returns the route udata, NULL when none. */
static void *route_of(hyi_router *r, const char *path, hyi_match *m)
{
    hyi_match local;
    if (!m)
        m = &local;
    int rc = hyi_router_match(r, path, strlen(path), m);
    if (rc == 0)
        return m->route;
    return NULL;
}

static int match_rc(hyi_router *r, const char *path)
{
    hyi_match m;
    return hyi_router_match(r, path, strlen(path), &m);
}

static int check(const char *path)
{
    return hyi_path_check(path, strlen(path));
}

/* Register a pattern expecting failure; returns the code, fills err. */
static int add_err(const char *pattern, hyi_route_error *err)
{
    hyi_router *r = mk();
    memset(err, 0, sizeof *err);
    int rc = hyi_router_add_route(r, "orders", pattern, NULL, err);
    hyi_router_destroy(r);
    return rc;
}

static void assert_slice(const char *path, hyi_slice s, const char *want)
{
    assert_int_equal(s.len, strlen(want));
    assert_memory_equal(path + s.off, want, s.len);
}

/* ------------------------------------------------------------------ paths */

static void path_simple_is_valid(void **st)
{
    (void)st;
    assert_int_equal(check("orders://item/42"), 0);
    assert_int_equal(check("a-b_c9://x"), 0);
}

static void path_subsystem_alone_is_valid(void **st)
{
    (void)st;
    assert_int_equal(check("orders://"), 0);
}

static void path_empty_is_bad(void **st)
{
    (void)st;
    assert_int_equal(hyi_path_check("", 0), HY_EBADPATH);
    assert_int_equal(hyi_path_check(NULL, 0), HY_EBADPATH);
}

static void path_without_scheme_separator_is_bad(void **st)
{
    (void)st;
    assert_int_equal(check("orders"), HY_EBADPATH);
    assert_int_equal(check("orders:/item"), HY_EBADPATH);
    assert_int_equal(check("orders//item"), HY_EBADPATH);
    assert_int_equal(check("orders:"), HY_EBADPATH);
    assert_int_equal(check("://item"), HY_EBADPATH);
}

static void path_subsystem_name_rules(void **st)
{
    (void)st;
    char name[80];
    assert_int_equal(check("Orders://a"), HY_EBADPATH);
    assert_int_equal(check("1orders://a"), HY_EBADPATH);
    assert_int_equal(check("or.ders://a"), HY_EBADPATH);
    assert_int_equal(check("-a://a"), HY_EBADPATH);
    memset(name, 'a', 64);
    strcpy(name + 64, "://x");
    assert_int_equal(check(name), 0);
    memset(name, 'a', 65);
    strcpy(name + 65, "://x");
    assert_int_equal(check(name), HY_EBADPATH);
}

static void path_empty_segments_are_bad(void **st)
{
    (void)st;
    assert_int_equal(check("orders://a//b"), HY_EBADPATH);
    assert_int_equal(check("orders://a/"), HY_EBADPATH);
    assert_int_equal(check("orders:///a"), HY_EBADPATH);
    assert_int_equal(check("orders:///"), HY_EBADPATH);
}

static void path_query_and_fragment_are_bad(void **st)
{
    (void)st;
    assert_int_equal(check("orders://item?x=1"), HY_EBADPATH);
    assert_int_equal(check("orders://item#top"), HY_EBADPATH);
}

static void path_reserved_bytes_are_bad(void **st)
{
    (void)st;
    const char *bad[] = {"orders://a b", "orders://{a}", "orders://a}", "orders://*",
                         "orders://a\tb", "orders://a\x7f", "orders://a\x01"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(check(bad[i]), HY_EBADPATH);
    assert_int_equal(check("orders://a-b_c.d~e!$&'()+,;=:@[]|^`\"<>%"), 0);
}

static void path_nul_inside_length_is_bad(void **st)
{
    (void)st;
    const char p[] = "orders://ab\0cd";
    assert_int_equal(hyi_path_check(p, sizeof p - 1), HY_EBADPATH);
    /* The same bytes up to the NUL are fine. */
    assert_int_equal(hyi_path_check(p, 11), 0);
}

static void path_length_need_not_end_in_nul(void **st)
{
    (void)st;
    hyi_router *r = mk();
    add(r, "item/{id}", &sub_files);
    const char *p = "orders://item/42/more";
    hyi_match m;
    assert_int_equal(hyi_router_match(r, p, strlen("orders://item/42"), &m), 0);
    assert_ptr_equal(m.route, &sub_files);
    assert_slice(p, m.params[0], "42");
    hyi_router_destroy(r);
}

static char *path_of_len(size_t len)
{
    /* "orders://" + "aaa...a/aaa...a" segments of 100 bytes */
    char *p = malloc(len + 1);
    size_t n = strlen("orders://");
    memcpy(p, "orders://", n);
    for (size_t i = n; i < len; i++)
        p[i] = ((i - n) % 101 == 100) ? '/' : 'a';
    if (p[len - 1] == '/')
        p[len - 1] = 'b';
    p[len] = 0;
    return p;
}

static void path_1024_bytes_ok_1025_bad(void **st)
{
    (void)st;
    char *p = path_of_len(1024);
    assert_int_equal(hyi_path_check(p, 1024), 0);
    free(p);
    p = path_of_len(1025);
    assert_int_equal(hyi_path_check(p, 1025), HY_EBADPATH);
    free(p);
}

static char *path_of_segments(unsigned n)
{
    char *p = malloc(16 + 2 * n);
    strcpy(p, "orders://");
    for (unsigned i = 0; i < n; i++)
        strcat(p, i ? "/s" : "s");
    return p;
}

static void path_32_segments_ok_33_bad(void **st)
{
    (void)st;
    char *p = path_of_segments(32);
    assert_int_equal(check(p), 0);
    free(p);
    p = path_of_segments(33);
    assert_int_equal(check(p), HY_EBADPATH);
    free(p);
}

static void path_valid_utf8_is_ok(void **st)
{
    (void)st;
    assert_int_equal(check("orders://caf\xc3\xa9"), 0);           /* é */
    assert_int_equal(check("orders://\xe2\x82\xac/x"), 0);        /* € */
    assert_int_equal(check("orders://\xf0\x9d\x84\x9e"), 0);      /* U+1D11E */
    assert_int_equal(check("orders://\xf4\x8f\xbf\xbf"), 0);      /* U+10FFFF */
    assert_int_equal(check("orders://\xed\x9f\xbf"), 0);          /* U+D7FF */
}

static void path_invalid_utf8_is_bad(void **st)
{
    (void)st;
    const char *bad[] = {
        "orders://\xc0\x80",         /* overlong NUL */
        "orders://\xc1\xbf",         /* overlong */
        "orders://\xe0\x80\xaf",     /* overlong 3-byte */
        "orders://\xf0\x80\x80\xaf", /* overlong 4-byte */
        "orders://\xed\xa0\x80",     /* surrogate U+D800 */
        "orders://\xed\xbf\xbf",     /* surrogate U+DFFF */
        "orders://\xe2\x82",         /* truncated */
        "orders://\xe2\x82/x",       /* truncated before '/' */
        "orders://\x80",             /* lone continuation */
        "orders://\xf4\x90\x80\x80", /* above U+10FFFF */
        "orders://\xf5\x80\x80\x80", /* invalid lead */
        "orders://\xff",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (check(bad[i]) != HY_EBADPATH)
            fail_msg("accepted bad UTF-8 #%zu", i);
    }
}

static void match_bad_path_reports_ebadpath(void **st)
{
    (void)st;
    hyi_router *r = mk();
    add(r, "**", &sub_files);
    hyi_match m;
    assert_int_equal(hyi_router_match(r, "orders://a//b", 13, &m), HY_EBADPATH);
    assert_null(m.route);
    hyi_router_destroy(r);
}

/* ------------------------------------------------------------------ patterns */

static void pattern_names_in_capture_order(void **st)
{
    (void)st;
    hyi_param_names n;
    hyi_route_error err;
    assert_int_equal(hyi_pattern_parse("a/{id}/{y:\\d{4}}/*/b/**", &n, &err), 0);
    assert_int_equal(n.n, 4);
    assert_string_equal(n.name[0], "id");
    assert_string_equal(n.name[1], "y");
    assert_string_equal(n.name[2], "*");
    assert_string_equal(n.name[3], "**");
}

static void pattern_empty_segment_reports_offset(void **st)
{
    (void)st;
    hyi_route_error err;
    assert_int_equal(add_err("a//b", &err), HY_EBADPATTERN);
    assert_int_equal(err.offset, 2);
    assert_int_equal(add_err("/a", &err), HY_EBADPATTERN);
    assert_int_equal(err.offset, 0);
    assert_int_equal(add_err("a/", &err), HY_EBADPATTERN);
    assert_int_equal(err.offset, 1);
}

static void pattern_unterminated_brace_reports_its_offset(void **st)
{
    (void)st;
    hyi_route_error err;
    assert_int_equal(add_err("item/{id", &err), HY_EBADPATTERN);
    assert_int_equal(err.offset, 5);
    assert_non_null(strstr(err.message, "unterminated"));
    assert_int_equal(add_err("item/{id:\\d{4}", &err), HY_EBADPATTERN);
    assert_int_equal(err.offset, 5);
}

static void pattern_bad_param_names(void **st)
{
    (void)st;
    hyi_route_error err;
    assert_int_equal(add_err("item/{}", &err), HY_EBADPATTERN);
    assert_int_equal(err.offset, 6);
    assert_non_null(strstr(err.message, "empty"));
    assert_int_equal(add_err("item/{9a}", &err), HY_EBADPATTERN);
    assert_int_equal(err.offset, 6);
    assert_int_equal(add_err("item/{a-b}", &err), HY_EBADPATTERN);
    assert_int_equal(err.offset, 7);
    assert_int_equal(add_err("item/{:\\d+}", &err), HY_EBADPATTERN);
    assert_int_equal(err.offset, 6);
    char p[100] = "{";
    memset(p + 1, 'n', 65);
    strcpy(p + 66, "}");
    assert_int_equal(add_err(p, &err), HY_EBADPATTERN);
    assert_int_equal(err.offset, 1);
    p[65] = '}'; /* 64 bytes is the limit and fine */
    p[66] = 0;
    assert_int_equal(hyi_pattern_parse(p, NULL, &err), 0);
}

static void pattern_duplicate_param_name_points_at_second(void **st)
{
    (void)st;
    hyi_route_error err;
    assert_int_equal(add_err("a/{id}/b/{id:\\d+}", &err), HY_EBADPATTERN);
    assert_int_equal(err.offset, 10);
    assert_non_null(strstr(err.message, "duplicate"));
}

static void pattern_double_star_must_be_last(void **st)
{
    (void)st;
    hyi_route_error err;
    assert_int_equal(add_err("files/**/x", &err), HY_EBADPATTERN);
    assert_int_equal(err.offset, 6);
    assert_non_null(strstr(err.message, "last"));
}

static void pattern_params_and_stars_must_be_whole_segments(void **st)
{
    (void)st;
    hyi_route_error err;
    assert_int_equal(add_err("a{id}", &err), HY_EBADPATTERN);
    assert_int_equal(err.offset, 1);
    assert_int_equal(add_err("{id}x", &err), HY_EBADPATTERN);
    assert_int_equal(err.offset, 4);
    assert_int_equal(add_err("a*", &err), HY_EBADPATTERN);
    assert_int_equal(err.offset, 1);
    assert_int_equal(add_err("*a", &err), HY_EBADPATTERN);
    assert_int_equal(err.offset, 1);
    assert_int_equal(add_err("***", &err), HY_EBADPATTERN);
    assert_int_equal(err.offset, 2);
    assert_int_equal(add_err("a}", &err), HY_EBADPATTERN);
    assert_int_equal(err.offset, 1);
}

static void pattern_bad_static_bytes(void **st)
{
    (void)st;
    hyi_route_error err;
    assert_int_equal(add_err("a b", &err), HY_EBADPATTERN);
    assert_int_equal(err.offset, 1);
    assert_int_equal(add_err("ab?", &err), HY_EBADPATTERN);
    assert_int_equal(err.offset, 2);
    assert_int_equal(add_err("x/\xc3", &err), HY_EBADPATTERN);
    assert_int_equal(err.offset, 2);
    assert_non_null(strstr(err.message, "UTF-8"));
}

static void pattern_regex_error_has_pcre2_message_and_offset(void **st)
{
    (void)st;
    hyi_route_error err;
    /* "(\d+" lacks its ')': PCRE2 reports it at the regex's end (4), the
     * regex starts at byte 9. */
    assert_int_equal(add_err("item/{id:(\\d+}", &err), HY_EBADPATTERN);
    assert_non_null(strstr(err.message, "missing closing parenthesis"));
    assert_int_equal(err.offset, 9 + 4);
    assert_non_null(strstr(hy_errdetail(), "item/{id:(\\d+}"));
}

static void pattern_empty_regex_is_rejected(void **st)
{
    (void)st;
    hyi_route_error err;
    assert_int_equal(add_err("{a:}", &err), HY_EBADPATTERN);
    assert_int_equal(err.offset, 3);
}

static void pattern_too_many_captures(void **st)
{
    (void)st;
    char p[256] = "";
    for (int i = 0; i < 17; i++)
        strcat(p, i ? "/*" : "*");
    hyi_route_error err;
    assert_int_equal(add_err(p, &err), HY_EBADPATTERN);
    assert_int_equal(err.offset, 32); /* the 17th '*' */
    p[strlen(p) - 2] = 0;             /* 16 is fine */
    assert_int_equal(hyi_pattern_parse(p, NULL, &err), 0);
}

static void pattern_too_many_segments(void **st)
{
    (void)st;
    char p[256] = "";
    for (int i = 0; i < 33; i++)
        strcat(p, i ? "/s" : "s");
    hyi_route_error err;
    assert_int_equal(add_err(p, &err), HY_EBADPATTERN);
    assert_int_equal(err.offset, 64);
    p[strlen(p) - 2] = 0;
    assert_int_equal(hyi_pattern_parse(p, NULL, &err), 0);
}

static void pattern_regex_with_nested_braces(void **st)
{
    (void)st;
    hyi_router *r = mk();
    add(r, "arc/{year:\\d{4}}/{slug:[a-z0-9-]+}", &sub_files);
    hyi_match m;
    const char *p = "orders://arc/2024/hello-world";
    assert_ptr_equal(route_of(r, p, &m), &sub_files);
    assert_int_equal(m.nparams, 2);
    assert_slice(p, m.params[0], "2024");
    assert_slice(p, m.params[1], "hello-world");
    assert_null(route_of(r, "orders://arc/202/x", NULL));
    assert_null(route_of(r, "orders://arc/20245/x", NULL));
    hyi_router_destroy(r);
}

static void pattern_regex_braces_in_class_and_escapes(void **st)
{
    (void)st;
    hyi_router *r = mk();
    add(r, "a/{x:[}]+}", &sub_files);
    add(r, "b/{x:\\}+}", &sub_orders);
    /* '}' cannot appear in a path, so check via parse of names only. */
    hyi_param_names n;
    assert_int_equal(hyi_pattern_parse("{x:[{]|a{1,2}}", &n, NULL), 0);
    assert_string_equal(n.name[0], "x");
    hyi_router_destroy(r);
}

static void pattern_regex_is_anchored_to_whole_segment(void **st)
{
    (void)st;
    hyi_router *r = mk();
    add(r, "n/{id:\\d+}", &sub_files);
    assert_ptr_equal(route_of(r, "orders://n/123", NULL), &sub_files);
    assert_null(route_of(r, "orders://n/123x", NULL));
    assert_null(route_of(r, "orders://n/x123", NULL));
    /* Alternation must not escape the anchors. */
    add(r, "alt/{v:a|b}", &sub_orders);
    assert_ptr_equal(route_of(r, "orders://alt/a", NULL), &sub_orders);
    assert_null(route_of(r, "orders://alt/ab", NULL));
    hyi_router_destroy(r);
}

static void pattern_regex_is_utf8_aware(void **st)
{
    (void)st;
    hyi_router *r = mk();
    add(r, "c/{ch:.}", &sub_files);
    assert_ptr_equal(route_of(r, "orders://c/\xc3\xa9", NULL), &sub_files);
    assert_null(route_of(r, "orders://c/ab", NULL));
    hyi_router_destroy(r);
}

static void pattern_catastrophic_regex_gives_no_match_not_a_hang(void **st)
{
    (void)st;
    hyi_router *r = mk();
    add(r, "x/{v:(a+)+b}", &sub_files);
    char p[1100] = "orders://x/";
    memset(p + strlen(p), 'a', 900);
    assert_int_equal(match_rc(r, p), HY_ENOROUTE);
    hyi_router_destroy(r);
}

static void pattern_unicode_static_segment(void **st)
{
    (void)st;
    hyi_router *r = mk();
    add(r, "caf\xc3\xa9/{id}", &sub_files);
    hyi_match m;
    assert_ptr_equal(route_of(r, "orders://caf\xc3\xa9/7", &m), &sub_files);
    assert_null(route_of(r, "orders://cafe/7", NULL));
    hyi_router_destroy(r);
}

static void fast_regex_agrees_with_pcre2(void **st)
{
    (void)st;
    static const char *const fast[] = {"\\d", "\\d+", "\\d{4}", "\\d{2,3}", "\\d{2,}",
                                       "\\w*", "[a-z0-9-]+", "[-a]?", "[a-]{1,2}",
                                       "[\\d_]+", "[A-F0-9]{2}", "\\w{0}"};
    static const char *const slow[] = {"[^a]", ".+", "\\d+?", "\\d++", "a|b", "\\s+",
                                       "[[:alpha:]]", "[]a]", "\\d{,3}", "a", "\\d{3",
                                       "[a-z", "[z-a]", "(\\d)"};
    static const char *const inputs[] = {"1", "12", "123", "1234", "12345", "abc", "a-b",
                                         "AB", "_", "\xc3\xa9", "a1", "-", "1a", "aa-", "FF"};
    pcre2_match_data *md = pcre2_match_data_create(1, NULL);
    for (size_t i = 0; i < sizeof fast / sizeof fast[0]; i++) {
        hyi_fastrx f;
        if (!hyi_fastrx_compile(fast[i], strlen(fast[i]), &f))
            fail_msg("\"%s\" should take the fast path", fast[i]);
        int ec;
        PCRE2_SIZE eo;
        pcre2_code *code = pcre2_compile((PCRE2_SPTR)fast[i], strlen(fast[i]),
                                         PCRE2_ANCHORED | PCRE2_ENDANCHORED | PCRE2_UTF, &ec,
                                         &eo, NULL);
        assert_non_null(code);
        for (size_t k = 0; k < sizeof inputs / sizeof inputs[0]; k++) {
            size_t n = strlen(inputs[k]);
            bool want = pcre2_match(code, (PCRE2_SPTR)inputs[k], n, 0, 0, md, NULL) >= 0;
            if (hyi_fastrx_match(&f, inputs[k], n) != want)
                fail_msg("\"%s\" on \"%s\": PCRE2 says %d", fast[i], inputs[k], want);
        }
        pcre2_code_free(code);
    }
    for (size_t i = 0; i < sizeof slow / sizeof slow[0]; i++) {
        hyi_fastrx f;
        if (hyi_fastrx_compile(slow[i], strlen(slow[i]), &f))
            fail_msg("\"%s\" must be left to PCRE2", slow[i]);
    }
    pcre2_match_data_free(md);
}

/* ------------------------------------------------------------------ registration */

static void duplicate_pattern_is_eexist(void **st)
{
    (void)st;
    hyi_router *r = mk();
    add(r, "item/{id}", &sub_files);
    hyi_route_error err;
    assert_int_equal(hyi_router_add_route(r, "orders", "item/{id}", NULL, &err), HY_EEXIST);
    hyi_router_destroy(r);
}

static void params_differing_only_in_name_are_duplicates(void **st)
{
    (void)st;
    hyi_router *r = mk();
    add(r, "item/{a}", &sub_files);
    assert_int_equal(hyi_router_add_route(r, "orders", "item/{b}", NULL, NULL), HY_EEXIST);
    add(r, "n/{a:\\d+}", &sub_files);
    assert_int_equal(hyi_router_add_route(r, "orders", "n/{b:\\d+}", NULL, NULL), HY_EEXIST);
    /* A different regex is a different route. */
    add(r, "n/{b:[0-9]+}", &sub_orders);
    add(r, "files/**", &sub_files);
    assert_int_equal(hyi_router_add_route(r, "orders", "files/**", NULL, NULL), HY_EEXIST);
    hyi_router_destroy(r);
}

static void route_for_unknown_subsystem_is_enoent(void **st)
{
    (void)st;
    hyi_router *r = mk();
    assert_int_equal(hyi_router_add_route(r, "nope", "a", NULL, NULL), HY_ENOENT);
    hyi_router_destroy(r);
}

static void subsystem_rules(void **st)
{
    (void)st;
    hyi_router *r = mk();
    assert_int_equal(hyi_router_add_subsystem(r, "orders", NULL), HY_EEXIST);
    assert_int_equal(hyi_router_add_subsystem(r, "Bad", NULL), HY_EINVAL);
    assert_int_equal(hyi_router_add_subsystem(r, "", NULL), HY_EINVAL);
    assert_int_equal(hyi_router_add_subsystem(r, "files", &sub_files), 0);
    hyi_router_destroy(r);
}

static void batch_add_is_all_or_nothing(void **st)
{
    (void)st;
    hyi_router *r = mk();
    hyi_route_spec specs[] = {{"a", &sub_files}, {"b/{x}", &sub_files}, {"b/{y}", NULL}};
    size_t failed = 99;
    hyi_route_error err;
    assert_int_equal(hyi_router_add_routes(r, "orders", specs, 3, &err, &failed), HY_EEXIST);
    assert_int_equal(failed, 2);
    assert_null(route_of(r, "orders://a", NULL));
    specs[2].pattern = "c/{y:(}";
    assert_int_equal(hyi_router_add_routes(r, "orders", specs, 3, &err, &failed),
                     HY_EBADPATTERN);
    assert_int_equal(failed, 2);
    assert_int_equal(hyi_router_add_routes(r, "orders", specs, 2, &err, &failed), 0);
    assert_ptr_equal(route_of(r, "orders://a", NULL), &sub_files);
    hyi_router_destroy(r);
}

static void remove_route_stops_matching(void **st)
{
    (void)st;
    hyi_router *r = mk();
    add(r, "item/{id}", &sub_files);
    add(r, "item/{id:\\d+}", &sub_orders);
    assert_ptr_equal(route_of(r, "orders://item/1", NULL), &sub_orders);
    assert_int_equal(hyi_router_remove_route(r, "orders", "item/{id:\\d+}"), 0);
    assert_ptr_equal(route_of(r, "orders://item/1", NULL), &sub_files);
    assert_int_equal(hyi_router_remove_route(r, "orders", "item/{id}"), 0);
    assert_int_equal(match_rc(r, "orders://item/1"), HY_ENOROUTE);
    assert_int_equal(hyi_router_remove_route(r, "orders", "item/{id}"), HY_ENOENT);
    assert_int_equal(hyi_router_remove_route(r, "nope", "item/{id}"), HY_ENOENT);
    add(r, "item/{id}", &sub_orders); /* re-adding works */
    assert_ptr_equal(route_of(r, "orders://item/1", NULL), &sub_orders);
    hyi_router_destroy(r);
}

static void remove_needs_the_exact_text(void **st)
{
    (void)st;
    hyi_router *r = mk();
    add(r, "item/{a}", &sub_files);
    assert_int_equal(hyi_router_remove_route(r, "orders", "item/{b}"), HY_ENOENT);
    assert_ptr_equal(route_of(r, "orders://item/1", NULL), &sub_files);
    hyi_router_destroy(r);
}

static void remove_subsystem_removes_its_routes(void **st)
{
    (void)st;
    hyi_router *r = mk();
    add(r, "x", &sub_files);
    assert_int_equal(hyi_router_remove_subsystem(r, "orders"), 0);
    hyi_match m;
    assert_int_equal(hyi_router_match(r, "orders://x", 10, &m), HY_ENOROUTE);
    assert_null(m.subsystem);
    assert_int_equal(hyi_router_remove_subsystem(r, "orders"), HY_ENOENT);
    assert_int_equal(hyi_router_add_subsystem(r, "orders", &sub_files), 0);
    hyi_router_destroy(r);
}

/* ------------------------------------------------------------------ matching */

static void static_route_matches_exactly(void **st)
{
    (void)st;
    hyi_router *r = mk();
    add(r, "users/me", &sub_files);
    hyi_match m;
    assert_ptr_equal(route_of(r, "orders://users/me", &m), &sub_files);
    assert_int_equal(m.nparams, 0);
    assert_ptr_equal(m.subsystem, &sub_orders);
    assert_null(route_of(r, "orders://users", NULL));
    assert_null(route_of(r, "orders://users/me/x", NULL));
    assert_null(route_of(r, "orders://users/m", NULL));
    hyi_router_destroy(r);
}

static void unknown_subsystem_is_enoroute_without_subsystem(void **st)
{
    (void)st;
    hyi_router *r = mk();
    hyi_match m;
    assert_int_equal(hyi_router_match(r, "nope://a", 8, &m), HY_ENOROUTE);
    assert_null(m.subsystem);
    assert_int_equal(hyi_router_match(r, "orders://a", 10, &m), HY_ENOROUTE);
    assert_ptr_equal(m.subsystem, &sub_orders);
    assert_null(m.route);
    hyi_router_destroy(r);
}

static void root_route_matches_bare_subsystem(void **st)
{
    (void)st;
    hyi_router *r = mk();
    assert_int_equal(match_rc(r, "orders://"), HY_ENOROUTE);
    add(r, "", &sub_files);
    hyi_match m;
    assert_ptr_equal(route_of(r, "orders://", &m), &sub_files);
    assert_int_equal(m.nparams, 0);
    assert_null(route_of(r, "orders://x", NULL));
    hyi_router_destroy(r);
}

static void params_capture_offsets_and_lengths(void **st)
{
    (void)st;
    hyi_router *r = mk();
    add(r, "users/{id}/posts/{pid}", &sub_files);
    const char *p = "orders://users/42/posts/seven";
    hyi_match m;
    assert_ptr_equal(route_of(r, p, &m), &sub_files);
    assert_int_equal(m.nparams, 2);
    assert_int_equal(m.params[0].off, 15);
    assert_int_equal(m.params[0].len, 2);
    assert_int_equal(m.params[1].off, 24);
    assert_int_equal(m.params[1].len, 5);
    hyi_router_destroy(r);
}

static void star_matches_exactly_one_segment(void **st)
{
    (void)st;
    hyi_router *r = mk();
    add(r, "files/*/meta", &sub_files);
    const char *p = "orders://files/a.txt/meta";
    hyi_match m;
    assert_ptr_equal(route_of(r, p, &m), &sub_files);
    assert_int_equal(m.nparams, 1);
    assert_slice(p, m.params[0], "a.txt");
    assert_null(route_of(r, "orders://files/meta", NULL));
    assert_null(route_of(r, "orders://files/a/b/meta", NULL));
    hyi_router_destroy(r);
}

static void double_star_matches_the_rest(void **st)
{
    (void)st;
    hyi_router *r = mk();
    add(r, "files/**", &sub_files);
    const char *p = "orders://files/a/b/c.txt";
    hyi_match m;
    assert_ptr_equal(route_of(r, p, &m), &sub_files);
    assert_int_equal(m.nparams, 1);
    assert_slice(p, m.params[0], "a/b/c.txt");
    hyi_router_destroy(r);
}

static void double_star_matches_zero_segments(void **st)
{
    (void)st;
    hyi_router *r = mk();
    add(r, "files/**", &sub_files);
    const char *p = "orders://files";
    hyi_match m;
    assert_ptr_equal(route_of(r, p, &m), &sub_files);
    assert_int_equal(m.nparams, 1);
    assert_int_equal(m.params[0].len, 0);
    assert_int_equal(m.params[0].off, strlen(p));
    hyi_router_destroy(r);
}

static void double_star_alone_matches_everything_but_loses_to_root(void **st)
{
    (void)st;
    hyi_router *r = mk();
    add(r, "**", &sub_files);
    assert_ptr_equal(route_of(r, "orders://", NULL), &sub_files);
    assert_ptr_equal(route_of(r, "orders://a/b", NULL), &sub_files);
    add(r, "", &sub_orders);
    assert_ptr_equal(route_of(r, "orders://", NULL), &sub_orders);
    hyi_router_destroy(r);
}

static void route_ending_here_beats_double_star(void **st)
{
    (void)st;
    hyi_router *r = mk();
    add(r, "a/**", &sub_files);
    add(r, "a", &sub_orders);
    assert_ptr_equal(route_of(r, "orders://a", NULL), &sub_orders);
    assert_ptr_equal(route_of(r, "orders://a/b", NULL), &sub_files);
    hyi_router_destroy(r);
}

static int r_static, r_regex, r_param, r_star, r_dstar;

static void precedence_static_regex_param_star_dstar(void **st)
{
    (void)st;
    hyi_router *r = mk();
    /* Added in reverse precedence, so order of registration cannot explain it. */
    add(r, "p/**", &r_dstar);
    add(r, "p/*", &r_star);
    add(r, "p/{id}", &r_param);
    add(r, "p/{id:\\d+}", &r_regex);
    add(r, "p/7", &r_static);
    assert_ptr_equal(route_of(r, "orders://p/7", NULL), &r_static);
    assert_ptr_equal(route_of(r, "orders://p/8", NULL), &r_regex);
    assert_ptr_equal(route_of(r, "orders://p/x", NULL), &r_param);
    assert_ptr_equal(route_of(r, "orders://p/x/y", NULL), &r_dstar);
    assert_int_equal(hyi_router_remove_route(r, "orders", "p/{id}"), 0);
    assert_ptr_equal(route_of(r, "orders://p/x", NULL), &r_star);
    hyi_router_destroy(r);
}

static void backtracks_from_static_to_param(void **st)
{
    (void)st;
    hyi_router *r = mk();
    add(r, "users/me", &r_static);
    add(r, "users/{id}/settings", &r_param);
    hyi_match m;
    const char *p = "orders://users/me/settings";
    assert_ptr_equal(route_of(r, p, &m), &r_param);
    assert_slice(p, m.params[0], "me");
    assert_ptr_equal(route_of(r, "orders://users/me", NULL), &r_static);
    hyi_router_destroy(r);
}

static void backtracks_from_regex_to_param_to_star_to_dstar(void **st)
{
    (void)st;
    hyi_router *r = mk();
    add(r, "a/{n:\\d+}/x", &r_regex);
    add(r, "a/{p}/y", &r_param);
    add(r, "a/*/z", &r_star);
    add(r, "a/**", &r_dstar);
    hyi_match m;
    assert_ptr_equal(route_of(r, "orders://a/1/x", NULL), &r_regex);
    assert_ptr_equal(route_of(r, "orders://a/1/y", NULL), &r_param);
    assert_ptr_equal(route_of(r, "orders://a/1/z", NULL), &r_star);
    const char *p = "orders://a/1/w";
    assert_ptr_equal(route_of(r, p, &m), &r_dstar);
    assert_int_equal(m.nparams, 1);
    assert_slice(p, m.params[0], "1/w");
    hyi_router_destroy(r);
}

static void backtracking_restores_captures(void **st)
{
    (void)st;
    hyi_router *r = mk();
    add(r, "{a}/{b}/x", &r_param);
    add(r, "*/k/y", &r_star);
    const char *p = "orders://one/k/y";
    hyi_match m;
    assert_ptr_equal(route_of(r, p, &m), &r_star);
    assert_int_equal(m.nparams, 1);
    assert_slice(p, m.params[0], "one");
    hyi_router_destroy(r);
}

static void tie_between_regexes_first_registered_wins(void **st)
{
    (void)st;
    int first, second;
    hyi_router *r = mk();
    add(r, "t/{a:\\d+}", &first);
    add(r, "t/{b:[0-9]+}", &second);
    assert_ptr_equal(route_of(r, "orders://t/5", NULL), &first);
    hyi_router_destroy(r);
    r = mk();
    add(r, "t/{b:[0-9]+}", &second);
    add(r, "t/{a:\\d+}", &first);
    assert_ptr_equal(route_of(r, "orders://t/5", NULL), &second);
    hyi_router_destroy(r);
}

static void tie_through_shared_regex_edge_goes_to_first_registered(void **st)
{
    (void)st;
    int x, y, z;
    hyi_router *r = mk();
    add(r, "{a:\\d+}/p", &x);
    add(r, "{b:[0-9]+}/q", &y);
    add(r, "{c:\\d+}/q", &z); /* shares the first regex edge, registered last */
    assert_ptr_equal(route_of(r, "orders://1/q", NULL), &y);
    assert_ptr_equal(route_of(r, "orders://1/p", NULL), &x);
    hyi_router_destroy(r);
}

static void regex_tie_prefers_more_specific_tail(void **st)
{
    (void)st;
    int x, y;
    hyi_router *r = mk();
    add(r, "{a:\\d+}/{rest}", &x);
    add(r, "{b:[0-9]+}/fixed", &y);
    const char *p = "orders://1/fixed";
    hyi_match m;
    assert_ptr_equal(route_of(r, p, &m), &y);
    assert_int_equal(m.nparams, 1);
    assert_slice(p, m.params[0], "1");
    hyi_router_destroy(r);
}

static void regex_edges_fall_through_in_order(void **st)
{
    (void)st;
    int a, b;
    hyi_router *r = mk();
    add(r, "v/{x:[a-z]+}", &a);
    add(r, "v/{y:\\d+}", &b);
    assert_ptr_equal(route_of(r, "orders://v/abc", NULL), &a);
    assert_ptr_equal(route_of(r, "orders://v/123", NULL), &b);
    assert_null(route_of(r, "orders://v/a1", NULL));
    hyi_router_destroy(r);
}

static void subsystems_are_separate(void **st)
{
    (void)st;
    hyi_router *r = mk();
    assert_int_equal(hyi_router_add_subsystem(r, "files", &sub_files), 0);
    add(r, "x", &r_static);
    assert_int_equal(hyi_router_add_route(r, "files", "x", &r_param, NULL), 0);
    hyi_match m;
    assert_ptr_equal(route_of(r, "orders://x", &m), &r_static);
    assert_ptr_equal(m.subsystem, &sub_orders);
    assert_ptr_equal(route_of(r, "files://x", &m), &r_param);
    assert_ptr_equal(m.subsystem, &sub_files);
    hyi_router_destroy(r);
}

static void many_subsystems_one_by_one(void **st)
{
    (void)st;
    hyi_router *r;
    assert_int_equal(hyi_router_create(&r), 0);
    char name[32], path[64];
    for (int i = 0; i < 1000; i++) {
        snprintf(name, sizeof name, "s%d", i);
        assert_int_equal(hyi_router_add_subsystem(r, name, (void *)(intptr_t)(i + 1)), 0);
        assert_int_equal(hyi_router_add_route(r, name, "x/{id}", (void *)(intptr_t)(i + 1),
                                              NULL), 0);
    }
    for (int i = 0; i < 1000; i++) {
        snprintf(path, sizeof path, "s%d://x/%d", i, i);
        hyi_match m;
        assert_int_equal(hyi_router_match(r, path, strlen(path), &m), 0);
        assert_int_equal((intptr_t)m.route, i + 1);
        assert_int_equal((intptr_t)m.subsystem, i + 1);
    }
    hyi_router_destroy(r);
}

static void ten_thousand_static_siblings(void **st)
{
    (void)st;
    enum { N = 10000 };
    hyi_router *r = mk();
    hyi_route_spec *specs = calloc(N, sizeof *specs);
    char (*pats)[32] = calloc(N, sizeof *pats);
    for (int i = 0; i < N; i++) {
        snprintf(pats[i], sizeof pats[i], "node/child%d/leaf", i);
        specs[i] = (hyi_route_spec){pats[i], (void *)(intptr_t)(i + 1)};
    }
    assert_int_equal(hyi_router_add_routes(r, "orders", specs, N, NULL, NULL), 0);
    add(r, "node/{other}/leaf", &r_param);
    char path[64];
    for (int i = 0; i < N; i++) {
        snprintf(path, sizeof path, "orders://node/child%d/leaf", i);
        hyi_match m;
        assert_int_equal(hyi_router_match(r, path, strlen(path), &m), 0);
        assert_int_equal((intptr_t)m.route, i + 1);
    }
    assert_ptr_equal(route_of(r, "orders://node/child10000/leaf", NULL), &r_param);
    assert_true(hyi_router_memory(r) > N * 32);
    free(specs);
    free(pats);
    hyi_router_destroy(r);
}

static void thousand_routes_added_one_by_one(void **st)
{
    (void)st;
    hyi_router *r = mk();
    char pat[64], path[64];
    for (int i = 0; i < 1000; i++) {
        snprintf(pat, sizeof pat, "k%d/{id}", i);
        add(r, pat, (void *)(intptr_t)(i + 1));
    }
    for (int i = 0; i < 1000; i += 7) {
        snprintf(path, sizeof path, "orders://k%d/z", i);
        assert_int_equal((intptr_t)route_of(r, path, NULL), i + 1);
    }
    hyi_router_destroy(r);
}

static void memory_grows_with_routes(void **st)
{
    (void)st;
    hyi_router *r = mk();
    size_t before = hyi_router_memory(r);
    add(r, "a/{id:\\d+}/b", &r_regex);
    assert_true(hyi_router_memory(r) > before);
    hyi_router_destroy(r);
}

static void read_sections_nest(void **st)
{
    (void)st;
    hyi_router *r = mk();
    add(r, "x", &r_static);
    assert_int_equal(hyi_router_read_enter(r), 0);
    assert_int_equal(hyi_router_read_enter(r), 0);
    assert_ptr_equal(route_of(r, "orders://x", NULL), &r_static);
    hyi_router_read_exit(r);
    hyi_router_read_exit(r);
    /* Outside every section, a writer does not wait for this thread. */
    hyi_router_synchronize(r);
    add(r, "y", &r_static);
    hyi_router_destroy(r);
}

/* Subsystems removed and added again in bulk: removal leaves tombstones the
 * probes step over, adds refill them, growth rebuilds the map; every live
 * name matches its own udata, every removed one is unknown. */
static void many_subsystems_removed_and_readded(void **state)
{
    (void)state;
    enum { N = 3000 };
    static int tag[N];
    hyi_router *r;
    assert_int_equal(hyi_router_create(&r), 0);
    char name[32], path[64];
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < N; i++) {
            if (round > 0 && i % 2)
                continue; /* odd ones stayed */
            snprintf(name, sizeof name, "s%d", i);
            assert_int_equal(hyi_router_add_subsystem(r, name, &tag[i]), 0);
            assert_int_equal(hyi_router_add_route(r, name, "x", &tag[i], NULL), 0);
        }
        for (int i = 0; i < N; i += 2) {
            snprintf(name, sizeof name, "s%d", i);
            assert_int_equal(hyi_router_remove_subsystem(r, name), 0);
        }
        for (int i = 0; i < N; i++) {
            snprintf(path, sizeof path, "s%d://x", i);
            hyi_match m;
            int rc = hyi_router_match(r, path, strlen(path), &m);
            if (i % 2) {
                assert_int_equal(rc, 0);
                assert_ptr_equal(m.subsystem, &tag[i]);
                assert_ptr_equal(m.route, &tag[i]);
            } else {
                assert_int_equal(rc, HY_ENOROUTE);
                assert_null(m.subsystem);
            }
        }
        snprintf(name, sizeof name, "s%d", 1);
        assert_int_equal(hyi_router_add_subsystem(r, name, NULL), HY_EEXIST);
    }
    hyi_router_destroy(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(many_subsystems_removed_and_readded),
        cmocka_unit_test(path_simple_is_valid),
        cmocka_unit_test(path_subsystem_alone_is_valid),
        cmocka_unit_test(path_empty_is_bad),
        cmocka_unit_test(path_without_scheme_separator_is_bad),
        cmocka_unit_test(path_subsystem_name_rules),
        cmocka_unit_test(path_empty_segments_are_bad),
        cmocka_unit_test(path_query_and_fragment_are_bad),
        cmocka_unit_test(path_reserved_bytes_are_bad),
        cmocka_unit_test(path_nul_inside_length_is_bad),
        cmocka_unit_test(path_length_need_not_end_in_nul),
        cmocka_unit_test(path_1024_bytes_ok_1025_bad),
        cmocka_unit_test(path_32_segments_ok_33_bad),
        cmocka_unit_test(path_valid_utf8_is_ok),
        cmocka_unit_test(path_invalid_utf8_is_bad),
        cmocka_unit_test(match_bad_path_reports_ebadpath),
        cmocka_unit_test(pattern_names_in_capture_order),
        cmocka_unit_test(pattern_empty_segment_reports_offset),
        cmocka_unit_test(pattern_unterminated_brace_reports_its_offset),
        cmocka_unit_test(pattern_bad_param_names),
        cmocka_unit_test(pattern_duplicate_param_name_points_at_second),
        cmocka_unit_test(pattern_double_star_must_be_last),
        cmocka_unit_test(pattern_params_and_stars_must_be_whole_segments),
        cmocka_unit_test(pattern_bad_static_bytes),
        cmocka_unit_test(pattern_regex_error_has_pcre2_message_and_offset),
        cmocka_unit_test(pattern_empty_regex_is_rejected),
        cmocka_unit_test(pattern_too_many_captures),
        cmocka_unit_test(pattern_too_many_segments),
        cmocka_unit_test(pattern_regex_with_nested_braces),
        cmocka_unit_test(pattern_regex_braces_in_class_and_escapes),
        cmocka_unit_test(pattern_regex_is_anchored_to_whole_segment),
        cmocka_unit_test(pattern_regex_is_utf8_aware),
        cmocka_unit_test(pattern_catastrophic_regex_gives_no_match_not_a_hang),
        cmocka_unit_test(pattern_unicode_static_segment),
        cmocka_unit_test(fast_regex_agrees_with_pcre2),
        cmocka_unit_test(duplicate_pattern_is_eexist),
        cmocka_unit_test(params_differing_only_in_name_are_duplicates),
        cmocka_unit_test(route_for_unknown_subsystem_is_enoent),
        cmocka_unit_test(subsystem_rules),
        cmocka_unit_test(batch_add_is_all_or_nothing),
        cmocka_unit_test(remove_route_stops_matching),
        cmocka_unit_test(remove_needs_the_exact_text),
        cmocka_unit_test(remove_subsystem_removes_its_routes),
        cmocka_unit_test(static_route_matches_exactly),
        cmocka_unit_test(unknown_subsystem_is_enoroute_without_subsystem),
        cmocka_unit_test(root_route_matches_bare_subsystem),
        cmocka_unit_test(params_capture_offsets_and_lengths),
        cmocka_unit_test(star_matches_exactly_one_segment),
        cmocka_unit_test(double_star_matches_the_rest),
        cmocka_unit_test(double_star_matches_zero_segments),
        cmocka_unit_test(double_star_alone_matches_everything_but_loses_to_root),
        cmocka_unit_test(route_ending_here_beats_double_star),
        cmocka_unit_test(precedence_static_regex_param_star_dstar),
        cmocka_unit_test(backtracks_from_static_to_param),
        cmocka_unit_test(backtracks_from_regex_to_param_to_star_to_dstar),
        cmocka_unit_test(backtracking_restores_captures),
        cmocka_unit_test(tie_between_regexes_first_registered_wins),
        cmocka_unit_test(tie_through_shared_regex_edge_goes_to_first_registered),
        cmocka_unit_test(regex_tie_prefers_more_specific_tail),
        cmocka_unit_test(regex_edges_fall_through_in_order),
        cmocka_unit_test(subsystems_are_separate),
        cmocka_unit_test(many_subsystems_one_by_one),
        cmocka_unit_test(ten_thousand_static_siblings),
        cmocka_unit_test(thousand_routes_added_one_by_one),
        cmocka_unit_test(memory_grows_with_routes),
        cmocka_unit_test(read_sections_nest),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
