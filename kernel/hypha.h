/* hypha: an in-process message-routing kernel.
 *
 * This header is the whole public API and its manual. Conventions, as in libuv
 * and LMDB:
 *  - every fallible call returns int: 0 on success or a negative hy_err code;
 *    hy_strerror(code) gives its text, hy_err_name(code) its name;
 *  - when a call can say more (which pattern, at which byte), the text is
 *    available from hy_errdetail() on the same thread until its next failing call;
 *  - handles are opaque; the caller owns what it passes in and the kernel copies
 *    what it keeps. */
#ifndef HYPHA_H
#define HYPHA_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define HY_VERSION_MAJOR 0
#define HY_VERSION_MINOR 1
#define HY_VERSION_PATCH 0
#define HY_VERSION_HEX \
    ((HY_VERSION_MAJOR << 16) | (HY_VERSION_MINOR << 8) | HY_VERSION_PATCH)

#if defined(__GNUC__)
#define HY_API __attribute__((visibility("default")))
#else
#define HY_API
#endif

/* ---------------------------------------------------------------- errors */

/* The one table of error codes: X(NAME, code, text). It expands into the hy_err
 * enum below and into hy_strerror()/hy_err_name(), so a code, its name and its
 * text cannot drift apart. Codes are negative; a published code keeps its number. */
#define HY_ERR_TABLE(X)                                                        \
    X(EINVAL,      -1, "invalid argument")                                     \
    X(ENOMEM,      -2, "out of memory: the pool cap or the allocator refused")  \
    X(EBADPATH,    -3, "malformed path")                                       \
    X(ENOROUTE,    -4, "no route matches the path")                            \
    X(EBADPATTERN, -5, "invalid route pattern")                                \
    X(EEXIST,      -6, "already registered")                                   \
    X(ENOENT,      -7, "not found")                                            \
    X(ECLOSED,     -8, "kernel is closed")                                     \
    X(EFULL,       -9, "mailbox is full")                                      \
    X(ETOOBIG,    -10, "payload too large")                                    \
    X(ETIMEDOUT,  -11, "timed out")                                            \
    X(EJOURNAL,   -12, "journal error")                                        \
    X(EMAPFULL,   -13, "journal map is full and at its size cap")              \
    X(ECORRUPT,   -14, "corrupt journal entry")                                \
    X(EREADERS,   -15, "journal reader table is full")                         \
    X(EDISKFULL,  -16, "no space left on the journal's device")                \
    X(EHANDLER,   -17, "handler returned an error")                            \
    X(ESTOPPED,   -18, "actor is stopped")                                     \
    X(EPERM,      -19, "permission denied")                                    \
    X(EBUSY,      -20, "resource busy")                                        \
    X(ESYS,       -21, "system call failed")


typedef enum hy_err {
    HY_OK = 0,
#define HY_ERR_ENUM_ROW(name, code, text) HY_##name = (code),
    HY_ERR_TABLE(HY_ERR_ENUM_ROW)
#undef HY_ERR_ENUM_ROW
} hy_err;

/* Text for an error code ("unknown error" for a code not in the table). */
HY_API const char *hy_strerror(int err);
/* Name of an error code, e.g. "HY_EBADPATH" ("HY_UNKNOWN" if not in the table). */
HY_API const char *hy_err_name(int err);
/* Details of the most recent failure on this thread (e.g. a pattern and the byte
 * offset of its error), or "" when the failing call had nothing to add. */
HY_API const char *hy_errdetail(void);

/* Version of the library that is linked (HY_VERSION_HEX of its build). */
HY_API unsigned hy_version(void);

#ifdef __cplusplus
}
#endif
#endif /* HYPHA_H */
