/* pubsub: publish to every subscription whose pattern matches.
 *
 * A subscription pattern is a full path pattern with the route syntax:
 * {name} is one segment, captured; * is any one segment; ** is the rest (last
 * only). Each subscription is its own actor, so its handler runs one message
 * at a time and may keep its log without a lock. Which subscriber runs first
 * is not fixed, so main prints the logs after a drain, in its own order.
 * No subsystem is registered: publishing needs none.
 *
 * In hypha.h: hy_subscribe, hy_publish (and its delivered count),
 * hy_unsubscribe, hy_param (a capture of the subscription pattern). */
#include <stdio.h>
#include <string.h>

#include "hypha.h"

/* What one subscriber saw, in arrival order: written by its own actor only. */
typedef struct sub_log {
    const char *pattern;
    uint64_t id;      /* for hy_unsubscribe */
    char text[256];
} sub_log;

static int record(hy_ctx *ctx, const hy_msg *msg)
{
    sub_log *s = (sub_log *)hy_route_udata(ctx); /* hy_subscribe's udata */
    size_t path_len, team_len;
    const char *path = hy_msg_path(msg, &path_len);
    const char *team = hy_param(ctx, "team", &team_len); /* NULL without {team} */
    size_t used = strlen(s->text);
    if (team)
        snprintf(s->text + used, sizeof s->text - used, "  %.*s (team %.*s)\n",
                 (int)path_len, path, (int)team_len, team);
    else
        snprintf(s->text + used, sizeof s->text - used, "  %.*s\n", (int)path_len, path);
    return 0;
}

static int check(int rc, const char *what)
{
    if (rc != 0)
        fprintf(stderr, "%s: %s %s\n", what, hy_strerror(rc), hy_errdetail());
    return rc;
}

static int publish(hy_kernel *k, const char *path)
{
    size_t delivered = 0;
    int rc = check(hy_publish(k, path, "x", 1, &delivered), path);
    if (rc == 0)
        printf("publish %-28s -> %zu\n", path, delivered);
    return rc;
}

int main(void)
{
    hy_kernel *k;
    if (check(hy_kernel_open(&k, NULL), "open") != 0)
        return 1;
    sub_log subs[] = {
        {.pattern = "news://sports/{team}"}, /* exactly one segment after sports */
        {.pattern = "news://*/results"},     /* any one segment, then results */
        {.pattern = "news://**"},            /* anything below news:// */
        {.pattern = "weather://**"},
    };
    enum { NSUBS = sizeof subs / sizeof subs[0] };
    int rc = 0;
    for (int i = 0; rc == 0 && i < NSUBS; i++)
        rc = check(hy_subscribe(k, subs[i].pattern, record, &subs[i], &subs[i].id),
                   subs[i].pattern);

    /* The count is how many subscriptions got the message; none is no error. */
    const char *const paths[] = {
        "news://sports/results",      /* {team}, * and ** all match */
        "news://sports/lions",        /* {team} and ** */
        "news://politics/results",    /* * and ** */
        "news://sports/lions/score",  /* only **: {team} is one segment */
        "news://",                    /* ** again: it matches zero segments too */
        "weather://oslo",
        "sport://lions",              /* no subscription under sport:// */
    };
    for (size_t i = 0; rc == 0 && i < sizeof paths / sizeof paths[0]; i++)
        rc = publish(k, paths[i]);

    /* After hy_unsubscribe nothing new reaches it (what was already queued to
     * it would still be handled). */
    if (rc == 0)
        rc = check(hy_unsubscribe(k, subs[2].id), "unsubscribe");
    if (rc == 0) {
        printf("unsubscribed %s\n", subs[2].pattern);
        rc = publish(k, "news://sports/tigers");
    }
    /* The id is spent: a second unsubscribe says so. */
    if (rc == 0)
        printf("unsubscribe again: %s\n", hy_err_name(hy_unsubscribe(k, subs[2].id)));

    if (rc == 0)
        rc = check(hy_kernel_drain(k, 5000), "drain");
    for (int i = 0; rc == 0 && i < NSUBS; i++)
        printf("%s got:\n%s", subs[i].pattern, subs[i].text);
    hy_kernel_close(k);
    return rc == 0 ? 0 : 1;
}
