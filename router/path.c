/* Path validation and splitting: "subsystem://seg/seg" checked and cut into
 * segments in one pass over the bytes, without allocating. Every message goes
 * through here first, so it is a table lookup per byte, and UTF-8 is decoded
 * only for bytes >= 0x80. */
#include "router_int.h"

/* Printable ASCII except / ? # { } * and space are segment bytes; '/' splits;
 * bytes >= 0x80 must form valid UTF-8; everything else (controls, NUL, DEL) is
 * rejected. */
#define OK HYI_CH_OK
#define HI HYI_CH_HIGH
const uint8_t hyi_path_class[256] = {
    /* 0x00 - 0x1f: controls */
    [0x21] = OK, /* ! */ [0x22] = OK, /* 0x23 '#' bad */ [0x24] = OK, [0x25] = OK,
    [0x26] = OK, [0x27] = OK, [0x28] = OK, [0x29] = OK, /* 0x2a '*' bad */
    [0x2b] = OK, [0x2c] = OK, [0x2d] = OK, [0x2e] = OK, [0x2f] = HYI_CH_SLASH,
    [0x30 ... 0x39] = OK, [0x3a] = OK, [0x3b] = OK, [0x3c] = OK, [0x3d] = OK,
    [0x3e] = OK, /* 0x3f '?' bad */ [0x40 ... 0x5a] = OK, [0x5b ... 0x60] = OK,
    [0x61 ... 0x7a] = OK, /* 0x7b '{' bad */ [0x7c] = OK, /* 0x7d '}' bad */
    [0x7e] = OK, /* 0x7f DEL bad */
    [0x80 ... 0xff] = HI,
};
#undef OK
#undef HI

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
    for (size_t i = 1; i < len; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-'))
            return false;
    }
    return true;
}

int hyi_path_split(const char *path, size_t len, hyi_path *p)
{
    if (HY_UNLIKELY(!path || len == 0 || len > HYI_PATH_MAX))
        return HY_EBADPATH;
    const unsigned char *s = (const unsigned char *)path;

    /* Subsystem name up to "://". */
    size_t i = 0;
    size_t lim = len < HYI_NAME_MAX + 1 ? len : HYI_NAME_MAX + 1;
    while (i < lim && s[i] != ':')
        i++;
    if (HY_UNLIKELY(i + 3 > len || s[i] != ':' || s[i + 1] != '/' || s[i + 2] != '/' ||
                    !hyi_subsystem_name_ok(path, i)))
        return HY_EBADPATH;
    p->name_len = (uint16_t)i;
    p->rest = (uint16_t)(i + 3);
    p->len = (uint16_t)len;

    /* Segments: non-empty, split on '/'. */
    unsigned nseg = 0;
    i += 3;
    size_t start = i;
    while (i < len) {
        uint8_t c = hyi_path_class[s[i]];
        if (HY_LIKELY(c == HYI_CH_OK)) {
            i++;
        } else if (c == HYI_CH_SLASH) {
            if (HY_UNLIKELY(i == start || nseg == HYI_MAX_SEGMENTS))
                return HY_EBADPATH;
            p->seg[nseg++] = (hyi_slice){(uint16_t)start, (uint16_t)(i - start)};
            start = ++i;
        } else if (c == HYI_CH_HIGH) {
            size_t n = hyi_utf8_seq(s + i, len - i);
            if (HY_UNLIKELY(n == 0))
                return HY_EBADPATH;
            i += n;
        } else {
            return HY_EBADPATH;
        }
    }
    if (i > start) {
        if (HY_UNLIKELY(nseg == HYI_MAX_SEGMENTS))
            return HY_EBADPATH;
        p->seg[nseg++] = (hyi_slice){(uint16_t)start, (uint16_t)(i - start)};
    } else if (nseg > 0) {
        return HY_EBADPATH; /* trailing '/' */
    }
    p->nseg = (uint16_t)nseg;
    return 0;
}

int hyi_path_check(const char *path, size_t len)
{
    hyi_path p;
    return hyi_path_split(path, len, &p);
}
