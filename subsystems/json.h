/* What the built-ins that speak JSON share: a growing buffer, a string
 * writer, and the kernel://stats, kernel://routes and kernel://actors
 * documents (shapes in hypha.h, at hy_introspect_attach). Introspection
 * answers hy_ask with them; the HTTP gateway serves the same bytes on
 * GET /stats, /routes and /actors, so the two cannot drift apart.
 *
 * Internal to the library (hidden symbols, prefixed hyj_); written on the
 * public header only, like every built-in. */
#ifndef HY_SUBSYSTEMS_JSON_H
#define HY_SUBSYSTEMS_JSON_H

#include <stdbool.h>
#include <stddef.h>

#include "hypha.h"

typedef struct hyj_buf {
    char *p; /* NUL-terminated once anything was written; malloc'ed */
    size_t len, cap;
    bool oom; /* an allocation failed: the contents are incomplete */
} hyj_buf;

/* Room for more bytes (and the NUL); false once out of memory. */
bool hyj_reserve(hyj_buf *b, size_t more);
void hyj_printf(hyj_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A JSON string: quotes, backslash and control characters escaped; bytes
 * >= 0x80 pass through (patterns and names are UTF-8). */
void hyj_str(hyj_buf *b, const char *s);

/* A dead-letter reason's name in lower case ("late_reply"): the key of
 * kernel://stats' "dead" object. */
void hyj_dead_name(int reason, char name[32]);

/* The documents, from one snapshot of the subsystems (hy_subsystems_list). */
void hyj_stats(hyj_buf *b, hy_kernel *k, const hy_subsystem_info *subs, size_t n);
void hyj_routes(hyj_buf *b, hy_kernel *k, const hy_subsystem_info *subs, size_t n);
void hyj_actors(hyj_buf *b, hy_kernel *k, const hy_subsystem_info *subs, size_t n);

typedef void (*hyj_emit_fn)(hyj_buf *b, hy_kernel *k, const hy_subsystem_info *subs,
                            size_t n);
/* Take the snapshot and let emit write the document into b (zeroed by the
 * caller). Returns 0, hy_subsystems_list's error, or HY_ENOMEM (b freed). */
int hyj_document(hyj_buf *b, hy_kernel *k, hyj_emit_fn emit);

#endif
