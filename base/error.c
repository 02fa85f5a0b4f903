/* The per-thread error detail behind hyi_fail. The codes themselves, their
 * names and texts belong to the public API (kernel/errors.c); this file only
 * keeps the sentence that says what went wrong, per thread like errno, so
 * concurrent failures never mix. */
#include <stdarg.h>
#include <stdio.h>

#include "hy_common.h"

static _Thread_local char errdetail[512];

const char *hyi_errdetail(void)
{
    return errdetail;
}

int hyi_fail(int err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(errdetail, sizeof errdetail, fmt, ap);
    va_end(ap);
    return err;
}
