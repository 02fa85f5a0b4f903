/* hy_strerror, hy_err_name and the per-thread error detail, all from the one
 * table in hy_errors.h. */
#include <stdarg.h>
#include <stdio.h>

#include "hy_common.h"

const char *hy_strerror(int err)
{
    switch (err) {
    case HY_OK:
        return "success";
#define HY_ERR_TEXT_ROW(name, code, text) \
    case code:                            \
        return text;
        HY_ERR_TABLE(HY_ERR_TEXT_ROW)
#undef HY_ERR_TEXT_ROW
    default:
        return "unknown error";
    }
}

const char *hy_err_name(int err)
{
    switch (err) {
    case HY_OK:
        return "HY_OK";
#define HY_ERR_NAME_ROW(name, code, text) \
    case code:                            \
        return "HY_" #name;
        HY_ERR_TABLE(HY_ERR_NAME_ROW)
#undef HY_ERR_NAME_ROW
    default:
        return "HY_UNKNOWN";
    }
}

/* Detail text lives per thread, like errno, so concurrent failures never mix. */
static _Thread_local char errdetail[512];

const char *hy_errdetail(void)
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

unsigned hy_version(void)
{
    return HY_VERSION_HEX;
}
