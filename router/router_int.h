/* The router's internal types, shared by its files and no one else:
 * the split path, the parsed pattern (a route record), the immutable compiled
 * table and the hash used everywhere. One place so each .c stays one concern. */
#ifndef HY_ROUTER_INT_H
#define HY_ROUTER_INT_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "router.h"

/* ------------------------------------------------------------------ hash */

static inline uint64_t hyi_load8(const void *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

static inline uint64_t hyi_load4(const void *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

/* 64x64->128 multiply, folded: the mixing step of wyhash-style hashes. */
static inline uint64_t hyi_mix(uint64_t a, uint64_t b)
{
    __uint128_t r = (__uint128_t)a * b;
    return (uint64_t)r ^ (uint64_t)(r >> 64);
}

/* A wyhash-style hash: segments and paths are short, so keys up to 16 bytes
 * take two (possibly overlapping) loads and no loop; longer keys 16 bytes a
 * step. Only quality for hash tables is needed, not resistance to attack. */
static inline uint64_t hyi_hash(const void *p, size_t n, uint64_t seed)
{
    const unsigned char *s = p;
    uint64_t h = seed ^ ((uint64_t)n * 0x9E3779B97F4A7C15ull), a, b;
    while (n > 16) {
        h = hyi_mix(hyi_load8(s) ^ 0xa0761d6478bd642full, hyi_load8(s + 8) ^ h);
        s += 16;
        n -= 16;
    }
    if (n >= 8) {
        a = hyi_load8(s);
        b = hyi_load8(s + n - 8);
    } else if (n >= 4) {
        a = hyi_load4(s);
        b = hyi_load4(s + n - 4);
    } else if (n) {
        a = ((uint64_t)s[0] << 16) | ((uint64_t)s[n >> 1] << 8) | s[n - 1];
        b = 0;
    } else {
        a = b = 0;
    }
    h = hyi_mix(a ^ 0xe7037ed1a0b428dbull, b ^ h ^ 0x8ebc6af09c88c6e3ull);
    return hyi_mix(h, 0x589965cc75374cc3ull);
}

/* Equality of n bytes, inline: keys are short and a libc call costs more
 * than the compare. Both buffers must hold n bytes. */
static inline bool hyi_eq(const char *a, const char *b, size_t n)
{
    if (n >= 8) {
        for (size_t i = 0; i + 8 < n; i += 8)
            if (hyi_load8(a + i) != hyi_load8(b + i))
                return false;
        return hyi_load8(a + n - 8) == hyi_load8(b + n - 8);
    }
    if (n >= 4)
        return hyi_load4(a) == hyi_load4(b) && hyi_load4(a + n - 4) == hyi_load4(b + n - 4);
    for (size_t i = 0; i < n; i++)
        if (a[i] != b[i])
            return false;
    return true;
}

/* Up to 8 bytes as one word, the same for equal keys of equal length (every
 * byte is covered; short keys by overlapping loads): short segments compare
 * and hash as one integer, without touching the key's memory. */
static inline uint64_t hyi_pack(const char *s, size_t n)
{
    const unsigned char *u = (const unsigned char *)s;
    if (n >= 4)
        return hyi_load4(u) | (hyi_load4(u + n - 4) << 32);
    if (n)
        return u[0] | ((uint64_t)u[n >> 1] << 8) | ((uint64_t)u[n - 1] << 16);
    return 0;
}

/* A segment's hash for the edge table: short ones straight from the word. */
static inline uint64_t hyi_seg_hash(const char *s, size_t n)
{
    if (n <= 8)
        return hyi_mix(hyi_pack(s, n) ^ 0xe7037ed1a0b428dbull, n ^ 0x8ebc6af09c88c6e3ull);
    return hyi_hash(s, n, 0);
}

/* A static edge's hash: the segment's own hash (computed once per segment
 * while matching, however often backtracking looks it up) mixed with the
 * parent node. */
static inline uint64_t hyi_edge_hash(uint64_t seghash, uint32_t parent)
{
    uint64_t h = seghash ^ ((uint64_t)(parent + 1) * 0x9E3779B97F4A7C15ull);
    h ^= h >> 29;
    h *= 0xbf58476d1ce4e5b9ull;
    h ^= h >> 32;
    return h;
}

#define HYI_STATIC_SEED 0x51a71cull /* whole-path hashes of fully static routes */

/* ------------------------------------------------------------------ paths */

/* A path split in one pass: where the part after "://" starts and each segment. */
typedef struct hyi_path {
    uint16_t name_len;   /* subsystem name is path[0 .. name_len) */
    uint16_t rest;       /* offset of the first segment (name_len + 3) */
    uint16_t len;        /* whole path */
    uint16_t nseg;
    hyi_slice seg[HYI_MAX_SEGMENTS];
} hyi_path;

/* HY_EBADPATH or 0. Fills *p only as far as needed; never allocates. */
int hyi_path_split(const char *path, size_t len, hyi_path *p);

/* Byte classes shared by paths and static pattern segments. */
enum { HYI_CH_OK = 0, HYI_CH_SLASH = 1, HYI_CH_HIGH = 2, HYI_CH_BAD = 4 };
extern const uint8_t hyi_path_class[256];
/* Length of the valid UTF-8 sequence at s (n bytes available), 0 if invalid. */
size_t hyi_utf8_seq(const unsigned char *s, size_t n);
/* True when name[0..len) is a valid subsystem name. */
bool hyi_subsystem_name_ok(const char *name, size_t len);

/* ------------------------------------------------------------------ patterns */

/* Segment kinds, in precedence order: a smaller value is more specific. END
 * marks where a route stops, so a route that ends beats a ** that matches
 * nothing; it also lets kind vectors compare with memcmp. */
enum { HYI_K_END = 0, HYI_K_STATIC, HYI_K_REGEX, HYI_K_PARAM, HYI_K_STAR, HYI_K_DSTAR };

/* A regex that is one ASCII character class with a count ("\d{4}",
 * "[a-z0-9-]+", "\w*"): matched by a byte-set test and a length check, the
 * same answer as PCRE2 gives (every member is one byte, so characters and
 * bytes count alike) at a fraction of the cost. */
typedef struct hyi_fastrx {
    uint64_t set[4];      /* bit b: byte b is in the class (b < 0x80 only) */
    uint32_t min, max;    /* length bounds, bytes */
} hyi_fastrx;

/* Recognise src[0..len) as a fast regex; false when PCRE2 must do it. */
bool hyi_fastrx_compile(const char *src, size_t len, hyi_fastrx *out);

static inline bool hyi_fastrx_match(const hyi_fastrx *f, const char *s, size_t len)
{
    if (len < f->min || len > f->max)
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char b = (unsigned char)s[i];
        if (!(f->set[b >> 6] >> (b & 63) & 1))
            return false;
    }
    return true;
}

typedef struct hyi_pseg {
    uint8_t kind;
    uint8_t jit;          /* REGEX: JIT code available */
    uint8_t name_len;     /* params: name is text[name_off ..) */
    uint16_t name_off;
    uint16_t off, len;    /* STATIC: the text; REGEX: the regex source */
    pcre2_code *code;     /* REGEX: compiled, owned by the record */
    hyi_fastrx *fast;     /* REGEX: when it is a simple class; owned */
} hyi_pseg;

/* A parsed, compiled pattern: what the writer keeps per route. Immutable once
 * built; tables borrow pointers into it (static keys, regex code), so a record
 * is freed only after every table that used it is gone. */
typedef struct hyi_route_rec {
    void *udata;
    uint64_t seq;          /* registration order: the lower wins a tie */
    char *text;            /* the pattern, NUL-terminated */
    uint16_t text_len;
    uint8_t nseg;
    uint8_t nparams;
    bool all_static;
    hyi_pseg seg[];        /* nseg entries */
} hyi_route_rec;

#define HYI_PATTERN_MAX 4096 /* bytes; regexes make patterns longer than paths */

/* Parse and compile a pattern into a new record (udata/seq left 0).
 * HY_EBADPATTERN with err filled, or HY_ENOMEM. */
int hyi_pattern_compile(const char *pattern, hyi_route_rec **out, hyi_route_error *err);
void hyi_route_rec_free(hyi_route_rec *rec);
/* Bytes a record holds, compiled regexes included. */
size_t hyi_route_rec_bytes(const hyi_route_rec *rec);
/* The capture names of a record, in capture order. */
void hyi_route_rec_names(const hyi_route_rec *rec, hyi_param_names *names);

/* ------------------------------------------------------------------ table */

/* A static edge's key: short keys inline (hyi_pack), longer ones borrowed
 * from a route record's text. */
typedef union hyi_key {
    uint64_t packed;      /* length <= 8 */
    const char *ptr;      /* longer */
} hyi_key;

/* One trie node. A lone static child is kept in the node itself (most nodes
 * of real tables have one: "users" under "svc3"), so following it costs a
 * compare, not a hash probe. Nodes with more live in the table-wide edge hash
 * keyed by (parent, segment), so a node with 10,000 static children costs no
 * more to search than one with two. */
typedef struct hyi_node {
    const hyi_route_rec *route;  /* a route ending here */
    const hyi_route_rec *dstar;  /* a route whose ** starts here */
    hyi_key one_key;             /* the lone static child's key */
    uint32_t one_len;
    uint32_t one_child;          /* 0 = no lone static child */
    uint32_t param;              /* child through {name}; 0 = none */
    uint32_t star;               /* child through *; 0 = none */
    uint32_t rx_first;           /* regex edges rx[rx_first .. + rx_count) */
    uint32_t rx_count : 31;
    uint32_t has_static : 1;     /* two or more static children, in the hash */
} hyi_node;

typedef struct hyi_edge {
    hyi_key k;
    uint32_t parent;
    uint32_t child;       /* 0 = empty slot (node 0, the root, is nobody's child) */
    uint32_t key_len;
    uint32_t hash;        /* low bits of the full hash, checked before the key */
} hyi_edge;

/* Does the key of a static edge equal the segment s (len bytes)? */
static inline bool hyi_key_eq(hyi_key k, uint32_t klen, const char *s, size_t len)
{
    if (klen != len)
        return false;
    return len <= 8 ? k.packed == hyi_pack(s, len) : hyi_eq(k.ptr, s, len);
}

typedef struct hyi_rx {
    const pcre2_code *code;  /* borrowed from a route record */
    const hyi_fastrx *fast;  /* borrowed too; NULL: use code */
    uint32_t child;
    uint32_t jit;
} hyi_rx;

/* A fully static route, found by one hash of the whole rest of the path. */
typedef struct hyi_sroute {
    uint64_t hash;
    const hyi_route_rec *rec; /* NULL = empty slot */
} hyi_sroute;

/* A subsystem's compiled routes: built once, never changed, shared read-only
 * by every matching thread. */
typedef struct hyi_table {
    hyi_node *nodes;
    uint32_t nnodes;
    uint32_t edge_mask;       /* edges has edge_mask + 1 slots, or none */
    hyi_edge *edges;
    uint32_t static_mask;
    hyi_sroute *statics;
    hyi_rx *rx;
    uint32_t nrx;
    uint32_t nroutes;
    bool only_static;         /* every route fully static: a hash miss ends it */
    size_t bytes;             /* what this table allocated */
} hyi_table;

/* Build from records in registration order. On a duplicate shape returns
 * HY_EEXIST and sets *dup to the index of the later record; HY_ENOMEM. */
int hyi_table_build(hyi_table *t, hyi_route_rec *const *recs, size_t n, size_t *dup);
void hyi_table_free(hyi_table *t);

/* ------------------------------------------------------------------ match */

/* Find the best route for a split path; 0 or HY_ENOROUTE. md is the calling
 * thread's match data for regex segments. */
int hyi_table_match(const hyi_table *t, const char *path, const hyi_path *p,
                    pcre2_match_data *md, hyi_match *m);

/* Match a segment against a compiled regex; shared by matching and tests. */
bool hyi_rx_match(const pcre2_code *code, bool jit, const char *s, size_t len,
                  pcre2_match_data *md);

#endif
