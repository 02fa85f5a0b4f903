/* libFuzzer target for the route compiler: the input (up to its first NUL)
 * as a pattern. Parsing alone and registering must agree; an accepted pattern
 * is then matched against paths derived from it (each {...} and * replaced by
 * a plain segment) and against the raw input used as a path, and every
 * capture must lie inside the path. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "router.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* "f://" + the pattern with brace groups replaced by `fill` and stars by "a". */
static size_t derive(const char *pat, const char *fill, char *out, size_t cap)
{
    size_t n = 0, flen = strlen(fill);
    memcpy(out, "f://", 4);
    n = 4;
    for (size_t i = 0; pat[i] && n + flen + 2 < cap; i++) {
        if (pat[i] == '{') {
            int depth = 1;
            for (i++; pat[i] && depth; i++) {
                if (pat[i] == '\\' && pat[i + 1])
                    i++;
                else if (pat[i] == '{')
                    depth++;
                else if (pat[i] == '}')
                    depth--;
            }
            i--;
            memcpy(out + n, fill, flen);
            n += flen;
        } else if (pat[i] == '*') {
            out[n++] = 'a';
        } else {
            out[n++] = pat[i];
        }
    }
    return n;
}

static void match_checked(hyi_router *r, const char *path, size_t len)
{
    hyi_match m;
    int rc = hyi_router_match(r, path, len, &m);
    if (rc == 0) {
        for (uint32_t i = 0; i < m.nparams; i++)
            if ((size_t)m.params[i].off + m.params[i].len > len)
                abort();
    } else if (rc != HY_ENOROUTE && rc != HY_EBADPATH) {
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 5000)
        return 0;
    char *pat = malloc(size + 1);
    memcpy(pat, data, size);
    pat[size] = 0;

    hyi_param_names names;
    hyi_route_error err;
    int parsed = hyi_pattern_parse(pat, &names, &err);
    if (parsed != 0 && parsed != HY_EBADPATTERN && parsed != HY_ENOMEM)
        abort();
    if (parsed == HY_EBADPATTERN && (err.offset < -1 || err.offset > (long)strlen(pat) + 1))
        abort();

    hyi_router *r;
    static int tag;
    if (hyi_router_create(&r) != 0 || hyi_router_add_subsystem(r, "f", &tag) != 0)
        abort();
    int added = hyi_router_add_route(r, "f", pat, pat, &err);
    if ((parsed == 0) != (added == 0))
        abort();
    if (added == 0) {
        if (names.n > HYI_MAX_PARAMS)
            abort();
        char path[2048];
        static const char *const fills[] = {"1", "abc", "2024", "x-y"};
        for (size_t f = 0; f < sizeof fills / sizeof fills[0]; f++)
            match_checked(r, path, derive(pat, fills[f], path, sizeof path));
        size_t n = strlen(pat);
        if (n + 4 < sizeof path) {
            memcpy(path, "f://", 4);
            memcpy(path + 4, pat, n);
            match_checked(r, path, n + 4);
        }
        if (hyi_router_remove_route(r, "f", pat) != 0)
            abort();
    }
    hyi_router_destroy(r);
    free(pat);
    return 0;
}
