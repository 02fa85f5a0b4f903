/* A scratch directory per test (a journal lives in it), removed with all it
 * holds afterwards. The including file defines _XOPEN_SOURCE or _GNU_SOURCE
 * for nftw before its first include. */
#ifndef HY_TEST_TMPDIR_H
#define HY_TEST_TMPDIR_H

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static int tmpdir_remove_one(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(p);
}

/* Removes dir and everything below it. */
static inline void tmpdir_remove(const char *dir)
{
    nftw(dir, tmpdir_remove_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* cmocka fixture: dir made from "/tmp/hy-XXXXXX", env = dir/env. */
typedef struct fixture {
    char dir[32];
    char env[64];
} fixture;

static inline int tmpdir_setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    if (!f)
        return -1;
    strcpy(f->dir, "/tmp/hy-XXXXXX");
    if (!mkdtemp(f->dir)) {
        free(f);
        return -1;
    }
    snprintf(f->env, sizeof f->env, "%s/env", f->dir);
    *state = f;
    return 0;
}

static inline int tmpdir_teardown(void **state)
{
    fixture *f = *state;
    tmpdir_remove(f->dir);
    free(f);
    return 0;
}

#endif
