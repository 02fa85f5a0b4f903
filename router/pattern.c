/* Pattern parsing: "item/{id:\d+}" into a route record of typed segments,
 * with each regex compiled by PCRE2 once (JIT when it can). A single left to
 * right scan, because a regex may hold '/' and nested braces ("\d{4}"), so the
 * pattern cannot be split on '/' first. Every error names the byte offset. */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "router_int.h"

static int bad(hyi_route_error *err, const char *pattern, long off, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Fill err (message, offset) and the thread's error detail, which also names
 * the pattern so a log line is enough to find it. */
static int bad(hyi_route_error *err, const char *pattern, long off, const char *fmt, ...)
{
    char msg[sizeof err->message];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (err) {
        err->offset = off;
        memcpy(err->message, msg, sizeof msg);
    }
    if (off >= 0)
        return hyi_fail(HY_EBADPATTERN, "pattern \"%.200s\": %s at byte %ld", pattern, msg, off);
    return hyi_fail(HY_EBADPATTERN, "pattern \"%.200s\": %s", pattern, msg);
}

static bool name_start(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_';
}

static bool name_char(char c)
{
    return name_start(c) || (c >= '0' && c <= '9');
}

/* End of a regex that starts at s[i], inside "{name:" whose '{' opened depth 1:
 * the offset of the closing '}', or -1. Escapes and character classes are
 * skipped so "\}" and "[}]" do not close it. */
static long regex_end(const char *s, size_t len, size_t i)
{
    int depth = 1;
    while (i < len) {
        char c = s[i];
        if (c == '\\') {
            i += 2;
            continue;
        }
        if (c == '[') {
            /* A class: ']' right after '[' or '[^' is literal. */
            i++;
            if (i < len && s[i] == '^')
                i++;
            if (i < len && s[i] == ']')
                i++;
            while (i < len && s[i] != ']') {
                i += s[i] == '\\' ? 2 : 1;
            }
            i++;
            continue;
        }
        if (c == '{') {
            depth++;
        } else if (c == '}' && --depth == 0) {
            return (long)i;
        }
        i++;
    }
    return -1;
}

/* One shared match context: a limit on regex backtracking so a hostile regex
 * cannot stall a matcher. Created once, read-only afterwards. */
static pcre2_match_context *rx_mctx;
static pthread_once_t rx_once = PTHREAD_ONCE_INIT;

static void rx_init(void)
{
    rx_mctx = pcre2_match_context_create(NULL);
    if (rx_mctx) {
        pcre2_set_match_limit(rx_mctx, 100000);
        pcre2_set_depth_limit(rx_mctx, 10000);
    }
}

bool hyi_rx_match(const pcre2_code *code, bool jit, const char *s, size_t len,
                  pcre2_match_data *md)
{
    int rc;
    /* rx_mctx was set before any record existed (pthread_once in compile),
     * and a record reaches a matcher only through an acquire publish. */
    if (jit)
        rc = pcre2_jit_match(code, (PCRE2_SPTR)s, len, 0, 0, md, rx_mctx);
    else
        rc = pcre2_match(code, (PCRE2_SPTR)s, len, 0, PCRE2_NO_UTF_CHECK, md, rx_mctx);
    /* 0 means "matched, ovector too small": we only ask whether it matched. */
    return rc >= 0;
}

static int compile_regex(const char *pattern, hyi_pseg *sg, hyi_route_error *err)
{
    int ecode;
    PCRE2_SIZE eoff;
    pthread_once(&rx_once, rx_init);
    if (!rx_mctx)
        return HY_ENOMEM;
    /* Anchored at both ends: the regex must match the whole segment. UTF, since
     * segments are validated UTF-8; no \C, which could split a character. */
    sg->code = pcre2_compile((PCRE2_SPTR)(pattern + sg->off), sg->len,
                             PCRE2_ANCHORED | PCRE2_ENDANCHORED | PCRE2_UTF |
                                 PCRE2_NEVER_BACKSLASH_C,
                             &ecode, &eoff, NULL);
    if (!sg->code) {
        if (ecode == PCRE2_ERROR_NOMEMORY)
            return HY_ENOMEM;
        PCRE2_UCHAR buf[200];
        if (pcre2_get_error_message(ecode, buf, sizeof buf) < 0)
            snprintf((char *)buf, sizeof buf, "PCRE2 error %d", ecode);
        return bad(err, pattern, (long)(sg->off + eoff), "regex error: %s", (char *)buf);
    }
    /* A simple class needs no engine at match time; the PCRE2 compile above
     * still validated it. Otherwise JIT, or the interpreter if JIT fails. */
    hyi_fastrx f;
    if (hyi_fastrx_compile(pattern + sg->off, sg->len, &f) && (sg->fast = malloc(sizeof f)))
        *sg->fast = f;
    else
        sg->jit = pcre2_jit_compile(sg->code, PCRE2_JIT_COMPLETE) == 0;
    return 0;
}

void hyi_route_rec_free(hyi_route_rec *rec)
{
    if (!rec)
        return;
    for (unsigned i = 0; i < rec->nseg; i++) {
        pcre2_code_free(rec->seg[i].code);
        free(rec->seg[i].fast);
    }
    free(rec);
}

size_t hyi_route_rec_bytes(const hyi_route_rec *rec)
{
    size_t b = sizeof *rec + rec->nseg * sizeof rec->seg[0] + rec->text_len + 1;
    for (unsigned i = 0; i < rec->nseg; i++) {
        size_t sz = 0;
        if (!rec->seg[i].code)
            continue;
        if (rec->seg[i].fast)
            b += sizeof *rec->seg[i].fast;
        if (pcre2_pattern_info(rec->seg[i].code, PCRE2_INFO_SIZE, &sz) == 0)
            b += sz;
        if (rec->seg[i].jit && pcre2_pattern_info(rec->seg[i].code, PCRE2_INFO_JITSIZE, &sz) == 0)
            b += sz;
    }
    return b;
}

void hyi_route_rec_names(const hyi_route_rec *rec, hyi_param_names *names)
{
    names->n = 0;
    for (unsigned i = 0; i < rec->nseg; i++) {
        const hyi_pseg *sg = &rec->seg[i];
        char *dst = names->name[names->n];
        switch (sg->kind) {
        case HYI_K_REGEX:
        case HYI_K_PARAM:
            memcpy(dst, rec->text + sg->name_off, sg->name_len);
            dst[sg->name_len] = 0;
            break;
        case HYI_K_STAR:
            strcpy(dst, "*");
            break;
        case HYI_K_DSTAR:
            strcpy(dst, "**");
            break;
        default:
            continue;
        }
        names->n++;
    }
}

/* Parse "{name}" or "{name:regex}" starting at s[i] == '{'; sets *end to the
 * offset just past the '}'. */
static int parse_param(const char *s, size_t len, size_t i, hyi_pseg *sg, size_t *end,
                       hyi_route_error *err)
{
    size_t open = i++;
    size_t name = i;
    if (i >= len)
        return bad(err, s, (long)open, "unterminated '{'");
    if (!name_start(s[i]))
        return bad(err, s, (long)i, s[i] == '}' || s[i] == ':' ? "empty parameter name"
                                                                : "invalid parameter name");
    while (i < len && name_char(s[i]))
        i++;
    if (i - name > HYI_NAME_MAX)
        return bad(err, s, (long)name, "parameter name longer than %d bytes", HYI_NAME_MAX);
    sg->name_off = (uint16_t)name;
    sg->name_len = (uint8_t)(i - name);
    if (i >= len)
        return bad(err, s, (long)open, "unterminated '{'");
    if (s[i] == '}') {
        sg->kind = HYI_K_PARAM;
        *end = i + 1;
        return 0;
    }
    if (s[i] != ':')
        return bad(err, s, (long)i, "invalid character in parameter name");
    i++;
    long close = regex_end(s, len, i);
    if (close < 0)
        return bad(err, s, (long)open, "unterminated '{'");
    if ((size_t)close == i)
        return bad(err, s, (long)i, "empty regex");
    sg->kind = HYI_K_REGEX;
    sg->off = (uint16_t)i;
    sg->len = (uint16_t)((size_t)close - i);
    *end = (size_t)close + 1;
    return 0;
}

/* A static segment from s[i]: the bytes a path segment may hold. */
static int parse_static(const char *s, size_t len, size_t i, hyi_pseg *sg, size_t *end,
                        hyi_route_error *err)
{
    size_t start = i;
    while (i < len && s[i] != '/') {
        unsigned char c = (unsigned char)s[i];
        uint8_t cls = hyi_path_class[c];
        if (cls == HYI_CH_OK) {
            i++;
        } else if (cls == HYI_CH_HIGH) {
            size_t n = hyi_utf8_seq((const unsigned char *)s + i, len - i);
            if (!n)
                return bad(err, s, (long)i, "invalid UTF-8");
            i += n;
        } else if (c == '{' || c == '*') {
            return bad(err, s, (long)i, "'%c' must be a whole segment", c);
        } else if (c == '}') {
            return bad(err, s, (long)i, "unmatched '}'");
        } else {
            return bad(err, s, (long)i, "byte 0x%02x not allowed in a segment", c);
        }
    }
    sg->kind = HYI_K_STATIC;
    sg->off = (uint16_t)start;
    sg->len = (uint16_t)(i - start);
    *end = i;
    return 0;
}

int hyi_pattern_compile(const char *pattern, hyi_route_rec **out, hyi_route_error *err)
{
    *out = NULL;
    if (!pattern)
        return bad(err, "", -1, "no pattern");
    size_t len = strlen(pattern);
    if (len > HYI_PATTERN_MAX)
        return bad(err, pattern, HYI_PATTERN_MAX, "pattern longer than %d bytes",
                   HYI_PATTERN_MAX);

    hyi_pseg segs[HYI_MAX_SEGMENTS];
    unsigned nseg = 0, nparams = 0;
    int rc = 0;
    size_t i = 0;
    while (i < len) {
        size_t start = i, end = 0;
        if (pattern[i] == '/') {
            rc = bad(err, pattern, (long)i, "empty segment");
            goto fail;
        }
        if (nseg == HYI_MAX_SEGMENTS) {
            rc = bad(err, pattern, (long)i, "more than %d segments", HYI_MAX_SEGMENTS);
            goto fail;
        }
        hyi_pseg *sg = &segs[nseg];
        memset(sg, 0, sizeof *sg);
        if (pattern[i] == '{') {
            rc = parse_param(pattern, len, i, sg, &end, err);
        } else if (pattern[i] == '*') {
            bool two = i + 1 < len && pattern[i + 1] == '*';
            end = i + (two ? 2 : 1);
            sg->kind = two ? HYI_K_DSTAR : HYI_K_STAR;
        } else {
            rc = parse_static(pattern, len, i, sg, &end, err);
        }
        if (rc)
            goto fail;
        nseg++;
        if (end < len && pattern[end] != '/') {
            rc = bad(err, pattern, (long)end, "'%s' must be a whole segment",
                     sg->kind == HYI_K_PARAM || sg->kind == HYI_K_REGEX ? "{...}"
                                                                        : "*");
            goto fail;
        }
        if (sg->kind == HYI_K_DSTAR && end < len) {
            rc = bad(err, pattern, (long)start, "'**' must be the last segment");
            goto fail;
        }
        if (sg->kind != HYI_K_STATIC) {
            if (nparams == HYI_MAX_PARAMS) {
                rc = bad(err, pattern, (long)start, "more than %d captures", HYI_MAX_PARAMS);
                goto fail;
            }
            nparams++;
        }
        if (sg->kind == HYI_K_PARAM || sg->kind == HYI_K_REGEX) {
            for (unsigned k = 0; k + 1 < nseg; k++) {
                if (segs[k].name_len == sg->name_len && sg->name_len &&
                    memcmp(pattern + segs[k].name_off, pattern + sg->name_off,
                           sg->name_len) == 0) {
                    rc = bad(err, pattern, (long)sg->name_off,
                             "duplicate parameter name '%.*s'", (int)sg->name_len,
                             pattern + sg->name_off);
                    goto fail;
                }
            }
        }
        if (sg->kind == HYI_K_REGEX && (rc = compile_regex(pattern, sg, err)) != 0) {
            nseg--; /* this segment holds no code */
            goto fail;
        }
        i = end;
        if (i < len) {
            i++; /* the '/' */
            if (i == len) {
                rc = bad(err, pattern, (long)(i - 1), "trailing '/'");
                goto fail;
            }
        }
    }

    /* One block: the record, its segments, then its text (static keys point
     * into it, so a lookup touches one allocation, not two). */
    size_t segs_bytes = nseg * sizeof segs[0];
    hyi_route_rec *rec = calloc(1, sizeof *rec + segs_bytes + len + 1);
    if (!rec) {
        rc = HY_ENOMEM;
        goto fail;
    }
    rec->text = (char *)rec + sizeof *rec + segs_bytes;
    memcpy(rec->text, pattern, len + 1);
    rec->text_len = (uint16_t)len;
    rec->nseg = (uint8_t)nseg;
    rec->nparams = (uint8_t)nparams;
    rec->all_static = nparams == 0;
    memcpy(rec->seg, segs, nseg * sizeof segs[0]);
    *out = rec;
    return 0;

fail:
    for (unsigned k = 0; k < nseg; k++) {
        pcre2_code_free(segs[k].code);
        free(segs[k].fast);
    }
    if (rc == HY_ENOMEM)
        return hyi_fail(HY_ENOMEM, "pattern \"%.200s\": out of memory", pattern);
    return rc;
}

int hyi_pattern_parse(const char *pattern, hyi_param_names *names, hyi_route_error *err)
{
    hyi_route_rec *rec;
    int rc = hyi_pattern_compile(pattern, &rec, err);
    if (rc)
        return rc;
    if (names)
        hyi_route_rec_names(rec, names);
    hyi_route_rec_free(rec);
    return 0;
}
