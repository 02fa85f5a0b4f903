/* What the peer programs share, in C and C++: the clock they time with and
 * their command line, "--name value" pairs of positive integers. */
#ifndef HY_PEER_H
#define HY_PEER_H

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static inline uint64_t peer_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

typedef struct peer_opt {
    const char *name;  /* "--messages" */
    uint64_t *value;   /* keeps its default unless given */
    uint64_t max;
} peer_opt;

/* A positive integer up to max, all of s. */
static inline int peer_parse_u64(const char *s, uint64_t max, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *end || v == 0 || v > max)
        return -1;
    *out = v;
    return 0;
}

/* Every argument must be one of opts with a valid value; otherwise the usage
 * line goes to stderr and the result is -1. */
static inline int peer_parse_args(int argc, char **argv, const peer_opt *opts, size_t nopts,
                                  const char *usage)
{
    for (int i = 1; i < argc; i += 2) {
        size_t o = 0;
        while (o < nopts && strcmp(argv[i], opts[o].name) != 0)
            o++;
        if (o == nopts || i + 1 >= argc ||
            peer_parse_u64(argv[i + 1], opts[o].max, opts[o].value) != 0) {
            fprintf(stderr, "usage: %s\n", usage);
            return -1;
        }
    }
    return 0;
}

#endif
