/* hy_strerror and hy_err_name from the one table of codes in hypha.h, and
 * hy_errdetail, the public face of base/'s per-thread detail. */
#include <stdarg.h>
#include <stdio.h>

#include "hy_common.h"
#include "hypha.h"
#include "hypha_ext.h"

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

const char *hy_errdetail(void)
{
    return hyi_errdetail();
}

int hy_ext_fail(int err, const char *fmt, ...)
{
    char text[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    return hyi_fail(err, "%s", text);
}

unsigned hy_version(void)
{
    return HY_VERSION_HEX;
}
