/* hypha's extension API: for the built-in subsystems in subsystems/, which
 * are written on the public header and this one alone.
 *
 * Not installed and not part of the stable API: what a built-in needs beyond
 * hypha.h, and nothing an application should rely on. It may change with
 * any release. Conventions are hypha.h's. */
#ifndef HYPHA_EXT_H
#define HYPHA_EXT_H

#include "hypha.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Add routes to the kernel's own subsystem, "kernel", so that a built-in
 * serves paths under kernel:// (the name is reserved: hy_subsystem_register
 * cannot). Patterns, keys and handlers are as in hy_route, relative to
 * kernel://; the kernel copies patterns and keys. Handlers run on the
 * kernel's subsystem's actor (or its keyed actors), one message at a time,
 * and their messages are counted under "kernel". All or none: on error no
 * route is added. Safe while messages flow; a route stays until close.
 * Returns 0, HY_EINVAL (k NULL, routes NULL with n > 0, a route without a
 * pattern or handler, a key that is not a capture of its pattern),
 * HY_EBADPATTERN (hy_errdetail() names the pattern, the byte offset and the
 * reason), HY_EEXIST (a pattern already served, or given twice; detail names
 * it), HY_ECLOSED (after hy_kernel_shutdown) or HY_ENOMEM. */
HY_API int hy_kernel_routes_add(hy_kernel *k, const hy_route *routes, size_t n);

#ifdef __cplusplus
}
#endif
#endif /* HYPHA_EXT_H */
