/* libFuzzer target for the NATS path <-> subject mapping (subsystems/nats.c):
 * any bytes as a path ("NAME://" + the bytes) must map to a subject NATS
 * accepts (tokens of A-Z a-z 0-9 - _ ~, none empty) and back to the same
 * path; any bytes as a subject that hy_nats_path accepts must map back to
 * the same subject (the mapping is one-to-one both ways). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hypha.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int subject_ok(const char *s)
{
    size_t tok = 0;
    for (; *s; s++) {
        char c = *s;
        if (c == '.') {
            if (tok == 0)
                return 0;
            tok = 0;
            continue;
        }
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_' || c == '~'))
            return 0;
        tok++;
    }
    return tok > 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 2048)
        return 0;
    char *in = malloc(size + 16);
    char *subj = malloc(3 * size + 64), *back = malloc(3 * size + 64);
    if (!in || !subj || !back)
        abort();
    size_t cap = 3 * size + 64;

    /* bytes as a path (cut at the first NUL, as a C string would be) */
    memcpy(in, "ord://", 6);
    memcpy(in + 6, data, size);
    in[6 + size] = 0;
    int n = hy_nats_subject(in, subj, cap);
    if (n < 0 || !subject_ok(subj))
        abort();
    if (hy_nats_path(subj, back, cap) < 0 || strcmp(back, in) != 0)
        abort();

    /* bytes as a subject */
    memcpy(in, data, size);
    in[size] = 0;
    if (hy_nats_path(in, back, cap) >= 0) {
        if (hy_nats_subject(back, subj, cap) < 0 || strcmp(subj, in) != 0)
            abort();
    }
    free(in);
    free(subj);
    free(back);
    return 0;
}
