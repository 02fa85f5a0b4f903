/* Poisoning of free memory for AddressSanitizer, shared by the pool and the
 * block allocator: under ASan a free object is poisoned so a use after free
 * is reported as with malloc; otherwise the macros cost nothing. */
#ifndef HYPHA_POOL_POISON_H
#define HYPHA_POOL_POISON_H

#if defined(__SANITIZE_ADDRESS__)
#define HYI_POOL_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define HYI_POOL_ASAN 1
#endif
#endif

#ifdef HYI_POOL_ASAN
#include <sanitizer/asan_interface.h>
#define POISON(p, n) ASAN_POISON_MEMORY_REGION((p), (n))
#define UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#else
#define POISON(p, n) ((void)(p), (void)(n))
#define UNPOISON(p, n) ((void)(p), (void)(n))
#endif

#endif
