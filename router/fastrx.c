/* Recognising the regexes that need no regex engine: one ASCII character
 * class ("\d", "\w", "[a-z0-9-]") with an optional count ("+", "*", "?",
 * "{n}", "{n,}", "{n,m}"). Route patterns are mostly of this shape, and a
 * byte-set test beats even JIT code, whose call alone costs more than the
 * test. Anything else (negated classes, '.', alternation, escapes other than
 * \d and \w, POSIX classes) is left to PCRE2, which compiled it anyway. */
#include "router_int.h"

static void set_bit(hyi_fastrx *f, unsigned b)
{
    f->set[b >> 6] |= 1ull << (b & 63);
}

static void set_range(hyi_fastrx *f, unsigned lo, unsigned hi)
{
    for (unsigned b = lo; b <= hi; b++)
        set_bit(f, b);
}

/* \d and \w as PCRE2 reads them without PCRE2_UCP: ASCII only. */
static bool class_escape(char c, hyi_fastrx *f)
{
    if (c == 'd') {
        set_range(f, '0', '9');
    } else if (c == 'w') {
        set_range(f, '0', '9');
        set_range(f, 'A', 'Z');
        set_range(f, 'a', 'z');
        set_bit(f, '_');
    } else {
        return false;
    }
    return true;
}

/* A byte that stands for itself inside a class. */
static bool plain(char c)
{
    return c >= 0x21 && c <= 0x7e && c != '\\' && c != '[' && c != ']';
}

static bool parse_class(const char *s, size_t len, size_t *pos, hyi_fastrx *f)
{
    size_t i = *pos + 1; /* past '[' */
    if (i < len && (s[i] == '^' || s[i] == ']'))
        return false; /* negation (multi-byte members) or a literal ']' first */
    for (;;) {
        if (i >= len)
            return false;
        char c = s[i];
        if (c == ']') {
            *pos = i + 1;
            return true;
        }
        if (c == '\\') {
            if (i + 1 >= len || !class_escape(s[i + 1], f))
                return false;
            i += 2;
            continue;
        }
        if (!plain(c))
            return false;
        if (i + 2 < len && s[i + 1] == '-' && s[i + 2] != ']') {
            char hi = s[i + 2];
            if (!plain(hi) || hi < c)
                return false;
            set_range(f, (unsigned char)c, (unsigned char)hi);
            i += 3;
        } else {
            set_bit(f, (unsigned char)c);
            i++;
        }
    }
}

static bool parse_count(const char *s, size_t len, size_t *pos, uint32_t *out)
{
    size_t i = *pos;
    uint32_t v = 0;
    if (i >= len || s[i] < '0' || s[i] > '9')
        return false;
    while (i < len && s[i] >= '0' && s[i] <= '9') {
        v = v * 10 + (uint32_t)(s[i] - '0');
        if (v > 65535) /* PCRE2's own limit; it rejected anything larger */
            return false;
        i++;
    }
    *pos = i;
    *out = v;
    return true;
}

bool hyi_fastrx_compile(const char *s, size_t len, hyi_fastrx *f)
{
    memset(f, 0, sizeof *f);
    size_t i = 0;
    if (len == 0)
        return false;
    if (s[0] == '\\') {
        if (len < 2 || !class_escape(s[1], f))
            return false;
        i = 2;
    } else if (s[0] == '[') {
        if (!parse_class(s, len, &i, f))
            return false;
    } else {
        return false;
    }
    f->min = f->max = 1;
    if (i == len)
        return true;
    char q = s[i++];
    if (q == '+' || q == '*' || q == '?') {
        f->min = q == '+';
        f->max = q == '?' ? 1 : UINT32_MAX;
    } else if (q == '{') {
        if (!parse_count(s, len, &i, &f->min))
            return false;
        f->max = f->min;
        if (i < len && s[i] == ',') {
            i++;
            f->max = UINT32_MAX;
            if (i < len && s[i] != '}' && !parse_count(s, len, &i, &f->max))
                return false;
        }
        if (i >= len || s[i] != '}' || f->max < f->min)
            return false;
        i++;
    } else {
        return false;
    }
    return i == len; /* a lazy or possessive suffix, or more: PCRE2's job */
}
