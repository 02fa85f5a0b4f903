/* On-disk formats of the log, head, floor and snapshot databases, and their
 * checksum.
 *
 * Keys are big-endian so LMDB's default memcmp order is numeric order. Value
 * headers are little-endian and written byte by byte, so the format does not
 * depend on the compiler's struct layout. Each header carries its own length, so
 * a later version can grow it and still be told apart from corruption. The
 * checksum is CRC32C (slicing-by-8, tables built once), over the key, the
 * header with its checksum field zeroed, and the body: a flipped byte, a
 * truncated value or a value under the wrong key all fail the check. Decoding
 * trusts no byte: every length is checked against the value's size first. */
#include <endian.h>
#include <pthread.h>
#include <string.h>
#include <time.h>

#include "journal_int.h"

/* ---------------------------------------------------------------- CRC32C */

static uint32_t crc_tab[8][256];
static bool crc_hw_ok;
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <nmmintrin.h>
#define HY_CRC_HW 1
/* SSE4.2's crc32 instruction computes CRC32C (same reflected polynomial, no
 * pre/post inversion): about 8 bytes per cycle, so checking every entry on
 * replay costs little. Chosen at run time, so the build needs no -msse4.2. */
__attribute__((target("sse4.2"))) static uint32_t crc_hw(uint32_t crc,
                                                         const unsigned char *p,
                                                         size_t len)
{
    uint64_t c = crc;
    for (; len >= 8; p += 8, len -= 8) {
        uint64_t w;
        memcpy(&w, p, sizeof w); /* unaligned-safe; x86 is little-endian */
        c = _mm_crc32_u64(c, w);
    }
    uint32_t c32 = (uint32_t)c;
    while (len--)
        c32 = _mm_crc32_u8(c32, *p++);
    return c32;
}
#endif

static void crc_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = (c >> 1) ^ (0x82F63B78u & (0u - (c & 1)));
        crc_tab[0][i] = c;
    }
    for (uint32_t i = 0; i < 256; i++)
        for (int t = 1; t < 8; t++)
            crc_tab[t][i] = (crc_tab[t - 1][i] >> 8) ^ crc_tab[0][crc_tab[t - 1][i] & 0xff];
#ifdef HY_CRC_HW
    crc_hw_ok = __builtin_cpu_supports("sse4.2");
#endif
}

/* The portable path: slicing-by-8, eight table lookups per 8 bytes. */
static uint32_t crc_sw(uint32_t crc, const unsigned char *p, size_t len)
{
    while (len >= 8) {
        /* Bytes are assembled, not loaded as a word: independent of alignment
         * and byte order. */
        uint32_t lo = crc ^ ((uint32_t)p[0] | (uint32_t)p[1] << 8 |
                             (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24);
        crc = crc_tab[7][lo & 0xff] ^ crc_tab[6][(lo >> 8) & 0xff] ^
              crc_tab[5][(lo >> 16) & 0xff] ^ crc_tab[4][lo >> 24] ^
              crc_tab[3][p[4]] ^ crc_tab[2][p[5]] ^ crc_tab[1][p[6]] ^ crc_tab[0][p[7]];
        p += 8;
        len -= 8;
    }
    while (len--)
        crc = (crc >> 8) ^ crc_tab[0][(crc ^ *p++) & 0xff];
    return crc;
}

uint32_t hyi_crc32c(uint32_t crc, const void *buf, size_t len)
{
    pthread_once(&crc_once, crc_init);
#ifdef HY_CRC_HW
    if (crc_hw_ok)
        return ~crc_hw(~crc, buf, len);
#endif
    return ~crc_sw(~crc, buf, len);
}

uint32_t hyi_crc32c_portable(uint32_t crc, const void *buf, size_t len)
{
    pthread_once(&crc_once, crc_init);
    return ~crc_sw(~crc, buf, len);
}

/* ---------------------------------------------------------------- bytes */

/* Writers below store whole words (memcpy: unaligned-safe; htoXX: any byte
 * order): the group-commit writer encodes every entry's header and key, and a
 * byte loop there cost a tenth of its instructions. */
static void put_be64(unsigned char *p, uint64_t v)
{
    v = htobe64(v);
    memcpy(p, &v, sizeof v);
}

static uint64_t get_be64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return v;
}

static void put_le(unsigned char *p, uint64_t v, int n)
{
    if (n == 8) {
        uint64_t w = htole64(v);
        memcpy(p, &w, sizeof w);
        return;
    }
    if (n == 4) {
        uint32_t w = htole32((uint32_t)v);
        memcpy(p, &w, sizeof w);
        return;
    }
    for (int i = 0; i < n; i++, v >>= 8)
        p[i] = (unsigned char)v;
}

static uint64_t get_le(const unsigned char *p, int n)
{
    /* Reading every entry's header on replay: whole-word loads where the
     * width allows (memcpy: unaligned-safe; leNNtoh: any byte order). */
    if (n == 8) {
        uint64_t w;
        memcpy(&w, p, sizeof w);
        return le64toh(w);
    }
    if (n == 4) {
        uint32_t w;
        memcpy(&w, p, sizeof w);
        return le32toh(w);
    }
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

void hyi_log_key_encode(unsigned char key[HYI_LOG_KEY_LEN], uint64_t gseq)
{
    put_be64(key, gseq);
}

int hyi_log_key_decode(const MDB_val *k, uint64_t *gseq)
{
    if (k->mv_size != HYI_LOG_KEY_LEN)
        return HY_ECORRUPT;
    *gseq = get_be64(k->mv_data);
    return 0;
}

void hyi_actor_key_encode(unsigned char key[8], uint64_t actor)
{
    put_be64(key, actor);
}

int hyi_actor_key_decode(const MDB_val *k, uint64_t *actor)
{
    if (k->mv_size != 8)
        return HY_ECORRUPT;
    *actor = get_be64(k->mv_data);
    return 0;
}

void hyi_le64_put(unsigned char *p, uint64_t v)
{
    put_le(p, v, 8);
}

uint64_t hyi_le64_get(const unsigned char *p)
{
    return get_le(p, 8);
}

uint64_t hyi_wall_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ---------------------------------------------------------------- entries */

void hyi_entry_encode(void *out, const hyi_entry_ids *ids, uint64_t ts, uint16_t flags,
                      const void *path, uint32_t path_len, const void *payload,
                      uint32_t payload_len)
{
    unsigned char *h = out;
    h[0] = HYI_ENTRY_VERSION;
    h[1] = HYI_ENTRY_HDR;
    put_le(h + 2, flags, 2);
    put_le(h + 4, 0, 4);
    put_le(h + 8, ts, 8);
    put_le(h + 16, ids->actor, 8);
    put_le(h + 24, ids->seq, 8);
    put_le(h + 32, ids->prev, 8);
    put_le(h + 40, path_len, 4);
    put_le(h + 44, payload_len, 4);
    if (path_len)
        memcpy(h + HYI_ENTRY_HDR, path, path_len);
    if (payload_len)
        memcpy(h + HYI_ENTRY_HDR + path_len, payload, payload_len);
    unsigned char key[HYI_LOG_KEY_LEN];
    hyi_log_key_encode(key, ids->gseq);
    uint32_t crc = hyi_crc32c(0, key, sizeof key);
    crc = hyi_crc32c(crc, h, HYI_ENTRY_HDR + (size_t)path_len + payload_len);
    put_le(h + 4, crc, 4);
}

int hyi_entry_peek(const MDB_val *val, uint64_t *actor, uint64_t *seq, uint64_t *prev)
{
    const unsigned char *h = val->mv_data;
    if (val->mv_size < HYI_ENTRY_HDR || h[0] != HYI_ENTRY_VERSION || h[1] != HYI_ENTRY_HDR)
        return -1;
    *actor = get_le(h + 16, 8);
    *seq = get_le(h + 24, 8);
    *prev = get_le(h + 32, 8);
    return 0;
}

int hyi_entry_decode(const MDB_val *key, const MDB_val *val, hyi_journal_entry *e,
                     hyi_entry_ids *ids, const char **why)
{
    const unsigned char *h = val->mv_data;
    if (hyi_log_key_decode(key, &ids->gseq) != 0)
        return *why = "log key is not 8 bytes", -1;
    if (val->mv_size < HYI_ENTRY_HDR)
        return *why = "value shorter than its header", -1;
    if (h[0] != HYI_ENTRY_VERSION)
        return *why = "unknown format version", -1;
    if (h[1] != HYI_ENTRY_HDR)
        return *why = "bad header length", -1;
    uint64_t path_len = get_le(h + 40, 4), payload_len = get_le(h + 44, 4);
    if (HYI_ENTRY_HDR + path_len + payload_len != val->mv_size)
        return *why = "lengths do not match the value size", -1;
    uint32_t stored = (uint32_t)get_le(h + 4, 4);
    unsigned char hdr[HYI_ENTRY_HDR];
    memcpy(hdr, h, sizeof hdr);
    put_le(hdr + 4, 0, 4);
    uint32_t crc = hyi_crc32c(0, key->mv_data, HYI_LOG_KEY_LEN);
    crc = hyi_crc32c(crc, hdr, sizeof hdr);
    crc = hyi_crc32c(crc, h + HYI_ENTRY_HDR, val->mv_size - HYI_ENTRY_HDR);
    if (crc != stored)
        return *why = "checksum mismatch", -1;
    ids->actor = e->actor = get_le(h + 16, 8);
    ids->seq = e->seq = get_le(h + 24, 8);
    ids->prev = get_le(h + 32, 8);
    e->flags = (uint16_t)get_le(h + 2, 2);
    e->timestamp_ns = get_le(h + 8, 8);
    e->path = (const char *)h + HYI_ENTRY_HDR;
    e->path_len = (size_t)path_len;
    e->payload = h + HYI_ENTRY_HDR + path_len;
    e->payload_len = (size_t)payload_len;
    return 0;
}

/* ---------------------------------------------------------------- snapshots */

size_t hyi_snap_size(size_t state_len)
{
    return HYI_SNAP_HDR + state_len;
}

static uint32_t snap_crc(uint64_t actor, const unsigned char *hdr_zeroed,
                         const void *state, size_t len)
{
    unsigned char key[8];
    put_be64(key, actor);
    uint32_t crc = hyi_crc32c(0, key, sizeof key);
    crc = hyi_crc32c(crc, hdr_zeroed, HYI_SNAP_HDR);
    return hyi_crc32c(crc, state, len);
}

void hyi_snap_encode(void *out, uint64_t actor, uint64_t seq, const void *state,
                     uint32_t len)
{
    unsigned char *h = out;
    memset(h, 0, HYI_SNAP_HDR);
    h[0] = HYI_SNAP_VERSION;
    h[1] = HYI_SNAP_HDR;
    put_le(h + 8, seq, 8);
    put_le(h + 16, len, 4);
    if (len)
        memcpy(h + HYI_SNAP_HDR, state, len);
    put_le(h + 4, snap_crc(actor, h, h + HYI_SNAP_HDR, len), 4);
}

int hyi_snap_decode(uint64_t actor, const MDB_val *val, uint64_t *seq,
                    const void **state, size_t *len, const char **why)
{
    const unsigned char *h = val->mv_data;
    if (val->mv_size < HYI_SNAP_HDR)
        return *why = "value shorter than its header", -1;
    if (h[0] != HYI_SNAP_VERSION)
        return *why = "unknown format version", -1;
    if (h[1] != HYI_SNAP_HDR)
        return *why = "bad header length", -1;
    uint64_t n = get_le(h + 16, 4);
    if (HYI_SNAP_HDR + n != val->mv_size)
        return *why = "length does not match the value size", -1;
    unsigned char hdr[HYI_SNAP_HDR];
    memcpy(hdr, h, sizeof hdr);
    put_le(hdr + 4, 0, 4);
    if (snap_crc(actor, hdr, h + HYI_SNAP_HDR, (size_t)n) != (uint32_t)get_le(h + 4, 4))
        return *why = "checksum mismatch", -1;
    *seq = get_le(h + 8, 8);
    *state = h + HYI_SNAP_HDR;
    *len = (size_t)n;
    return 0;
}
