/* Tests of base/hy_common.h's helpers that the hot paths and tables lean on:
 * hyi_copy_short at every length around its word and vector steps (nothing
 * outside the destination written, nothing lost), and hyi_probe_may_move,
 * the backward-shift rule, in a linear-probing table driven by random
 * inserts and deletions against a plain list of what it should hold. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hy_common.h"

enum { GUARD = 32, MAX_LEN = 160 };

static void test_copy_short_every_length_and_offset(void **state)
{
    (void)state;
    unsigned char src[MAX_LEN + 16], dst[MAX_LEN + 2 * GUARD + 16];
    for (size_t i = 0; i < sizeof src; i++)
        src[i] = (unsigned char)(i * 7 + 1);
    for (size_t n = 0; n <= MAX_LEN; n++) {
        for (size_t off = 0; off < 16; off++) { /* unaligned sources and targets */
            memset(dst, 0xee, sizeof dst);
            hyi_copy_short(dst + GUARD + off, src + off, n);
            for (size_t i = 0; i < GUARD + off; i++)
                assert_int_equal(dst[i], 0xee);
            assert_memory_equal(dst + GUARD + off, src + off, n);
            for (size_t i = GUARD + off + n; i < sizeof dst; i++)
                assert_int_equal(dst[i], 0xee);
        }
    }
}

/* A small linear-probing table of nonzero keys whose home is key % CAP. */
enum { CAP = 64 };

static size_t home_of(uint64_t key)
{
    return (size_t)(key % CAP);
}

static int find(const uint64_t *t, uint64_t key)
{
    for (size_t i = home_of(key), steps = 0; steps < CAP; i = (i + 1) % CAP, steps++) {
        if (t[i] == 0)
            return -1;
        if (t[i] == key)
            return (int)i;
    }
    return -1;
}

static void remove_at(uint64_t *t, size_t i)
{
    for (size_t j = i;;) {
        j = (j + 1) % CAP;
        if (t[j] == 0)
            break;
        if (hyi_probe_may_move(home_of(t[j]), i, j)) {
            t[i] = t[j];
            i = j;
        }
    }
    t[i] = 0;
}

static void test_backward_shift_keeps_every_key_findable(void **state)
{
    (void)state;
    uint64_t t[CAP] = {0}, held[CAP];
    size_t nheld = 0;
    srand(12345);
    for (int step = 0; step < 200000; step++) {
        /* keys crowd a few homes (so runs are long and wrap round the end) */
        uint64_t key = (uint64_t)(rand() % 6) * CAP + (uint64_t)(CAP - 3 + rand() % 6) % CAP + 1;
        int at = find(t, key);
        if (at < 0 && nheld < CAP * 3 / 4) {
            size_t i = home_of(key);
            while (t[i])
                i = (i + 1) % CAP;
            t[i] = key;
            held[nheld++] = key;
        } else if (at >= 0) {
            remove_at(t, (size_t)at);
            for (size_t k = 0; k < nheld; k++)
                if (held[k] == key) {
                    held[k] = held[--nheld];
                    break;
                }
        }
        for (size_t k = 0; k < nheld; k++)
            assert_true(find(t, held[k]) >= 0);
        size_t used = 0;
        for (size_t i = 0; i < CAP; i++)
            used += t[i] != 0;
        assert_int_equal(used, nheld);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_copy_short_every_length_and_offset),
        cmocka_unit_test(test_backward_shift_keeps_every_key_findable),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
