/* Path validation and splitting: "subsystem://seg/seg" checked and cut into
 * segments in one pass over the bytes, without allocating. Every message goes
 * through here first, so it is a table lookup per byte, and UTF-8 is decoded
 * only for bytes >= 0x80. */
#include "router_int.h"

/* Printable ASCII except / ? # { } * and space are segment bytes; '/' splits;
 * bytes >= 0x80 must form valid UTF-8; everything else (controls, NUL, DEL) is
 * rejected. The classes are bits, so a whole path is checked by OR-ing them. */
#define CLS(b)                                                                        \
    ((b) >= 0x80 ? HYI_CH_HIGH                                                        \
     : (b) == '/' ? HYI_CH_SLASH                                                      \
     : ((b) <= 0x20 || (b) == 0x7f || (b) == '?' || (b) == '#' || (b) == '{' ||        \
        (b) == '}' || (b) == '*')                                                     \
         ? HYI_CH_BAD                                                                 \
         : HYI_CH_OK)
#define R4(b) CLS(b), CLS((b) + 1), CLS((b) + 2), CLS((b) + 3)
#define R16(b) R4(b), R4((b) + 4), R4((b) + 8), R4((b) + 12)
#define R64(b) R16(b), R16((b) + 16), R16((b) + 32), R16((b) + 48)
const uint8_t hyi_path_class[256] = {R64(0), R64(64), R64(128), R64(192)};

/* Subsystem name bytes after the first: [a-z0-9_-]. */
#define NC(b) (((b) >= 'a' && (b) <= 'z') || ((b) >= '0' && (b) <= '9') || (b) == '_' || (b) == '-')
#define N4(b) NC(b), NC((b) + 1), NC((b) + 2), NC((b) + 3)
#define N16(b) N4(b), N4((b) + 4), N4((b) + 8), N4((b) + 12)
#define N64(b) N16(b), N16((b) + 16), N16((b) + 32), N16((b) + 48)
static const uint8_t name_char[256] = {N64(0), N64(64), N64(128), N64(192)};

size_t hyi_utf8_seq(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    size_t need;
    unsigned char lo = 0x80, hi = 0xbf; /* allowed range of the second byte */
    if (c >= 0xc2 && c <= 0xdf) {
        need = 2;
    } else if (c >= 0xe0 && c <= 0xef) {
        need = 3;
        if (c == 0xe0)
            lo = 0xa0;      /* overlong */
        else if (c == 0xed)
            hi = 0x9f;      /* surrogates */
    } else if (c >= 0xf0 && c <= 0xf4) {
        need = 4;
        if (c == 0xf0)
            lo = 0x90;      /* overlong */
        else if (c == 0xf4)
            hi = 0x8f;      /* above U+10FFFF */
    } else {
        return 0;           /* continuation byte, C0/C1 overlong lead, F5+ */
    }
    if (n < need || s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < need; i++)
        if ((s[i] & 0xc0) != 0x80)
            return 0;
    return need;
}

bool hyi_subsystem_name_ok(const char *name, size_t len)
{
    if (len == 0 || len > HYI_NAME_MAX || name[0] < 'a' || name[0] > 'z')
        return false;
    for (size_t i = 1; i < len; i++)
        if (!name_char[(unsigned char)name[i]])
            return false;
    return true;
}

/* High bit set in each byte of v that is zero, and nowhere else. */
static inline uint64_t zero_bytes(uint64_t v)
{
    const uint64_t low7 = 0x7f7f7f7f7f7f7f7full;
    return ~(((v & low7) + low7) | v | low7);
}

/* Why a path is malformed, in the thread's detail (hyi_fail): cold, so the
 * checks above stay a branch each. */
static __attribute__((cold, noinline)) int bad(const char *why, size_t at)
{
    return hyi_fail(HY_EBADPATH, "%s (at byte %zu)", why, at);
}

static __attribute__((cold, noinline)) int bad_byte(const unsigned char *s, size_t from,
                                                    size_t len)
{
    for (size_t i = from; i < len; i++)
        if (hyi_path_class[s[i]] & HYI_CH_BAD)
            return hyi_fail(HY_EBADPATH, "byte 0x%02x is not allowed in a segment (at byte "
                            "%zu)", s[i], i);
    return bad("a byte not allowed in a segment", from);
}

int hyi_path_split(const char *path, size_t len, hyi_path *p)
{
    if (HY_UNLIKELY(!path || len == 0 || len > HYI_PATH_MAX))
        return bad(!path || len == 0 ? "empty" : "longer than HY_PATH_MAX", 0);
    const unsigned char *s = (const unsigned char *)path;

    /* Subsystem name, then "://". */
    if (HY_UNLIKELY(s[0] < 'a' || s[0] > 'z'))
        return bad("the subsystem name must start with a-z", 0);
    size_t i = 1;
    while (i < len && name_char[s[i]])
        i++;
    if (HY_UNLIKELY(i > HYI_NAME_MAX || i + 3 > len || s[i] != ':' || s[i + 1] != '/' ||
                    s[i + 2] != '/'))
        return bad("want a subsystem name [a-z][a-z0-9_-]{0,63} then ://", i);
    const size_t rest = i + 3;
    p->name_len = (uint16_t)i;
    p->rest = (uint16_t)rest;
    p->len = (uint16_t)len;

    /* Pass 1: every byte allowed? The classes OR-ed, eight bytes a step. */
    unsigned acc = 0;
    for (i = rest; i + 8 <= len; i += 8)
        acc |= hyi_path_class[s[i]] | hyi_path_class[s[i + 1]] | hyi_path_class[s[i + 2]] |
               hyi_path_class[s[i + 3]] | hyi_path_class[s[i + 4]] | hyi_path_class[s[i + 5]] |
               hyi_path_class[s[i + 6]] | hyi_path_class[s[i + 7]];
    for (; i < len; i++)
        acc |= hyi_path_class[s[i]];
    if (HY_UNLIKELY(acc & HYI_CH_BAD))
        return bad_byte(s, rest, len);
    if (acc & HYI_CH_HIGH) {
        /* Rare: some UTF-8; decode those sequences properly. */
        for (i = rest; i < len;) {
            if (s[i] < 0x80) {
                i++;
                continue;
            }
            size_t n = hyi_utf8_seq(s + i, len - i);
            if (HY_UNLIKELY(n == 0))
                return bad("invalid UTF-8", i);
            i += n;
        }
    }

    /* Pass 2: cut at each '/', eight bytes a step; no segment may be empty. */
    unsigned nseg = 0;
    size_t start = rest;
    const uint64_t slashes = 0x2f2f2f2f2f2f2f2full;
    for (i = rest; i + 8 <= len; i += 8) {
        uint64_t m = zero_bytes(hyi_load8(s + i) ^ slashes);
        while (m) {
            size_t at = i + ((size_t)__builtin_ctzll(m) >> 3);
            if (HY_UNLIKELY(at == start || nseg == HYI_MAX_SEGMENTS))
                return bad(at == start ? "an empty segment" : "more than HY_MAX_SEGMENTS", at);
            p->seg[nseg++] = (hyi_slice){(uint16_t)start, (uint16_t)(at - start)};
            start = at + 1;
            m &= m - 1;
        }
    }
    for (; i < len; i++) {
        if (s[i] != '/')
            continue;
        if (HY_UNLIKELY(i == start || nseg == HYI_MAX_SEGMENTS))
            return bad(i == start ? "an empty segment" : "more than HY_MAX_SEGMENTS", i);
        p->seg[nseg++] = (hyi_slice){(uint16_t)start, (uint16_t)(i - start)};
        start = i + 1;
    }
    if (start < len) {
        if (HY_UNLIKELY(nseg == HYI_MAX_SEGMENTS))
            return bad("more than HY_MAX_SEGMENTS", start);
        p->seg[nseg++] = (hyi_slice){(uint16_t)start, (uint16_t)(len - start)};
    } else if (nseg > 0) {
        return bad("a trailing '/'", len - 1);
    }
    p->nseg = (uint16_t)nseg;
    return 0;
}

int hyi_path_check(const char *path, size_t len)
{
    hyi_path p;
    return hyi_path_split(path, len, &p);
}
