/* cluster: one subsystem served by another process, through NATS.
 *
 * Run against a nats-server: "cluster nats://127.0.0.1:4222". The program
 * forks a worker process that registers "orders" and exports it
 * (hy_nats_export); the front process imports it (hy_nats_import) and uses
 * hy_send and hy_ask on orders:// as if it were local. The worker counts
 * what it handles and answers asks. (Written to compile as C and as C++.)
 *
 * Start a server first:  nats-server -a 127.0.0.1 -p 4222 & */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "hypha.h"

static int added;

/* orders://item/{id}/add (plain sends) and orders://item/{id} (asks). */
static int add(hy_ctx *ctx, const hy_msg *msg)
{
    (void)ctx, (void)msg;
    added++; /* one actor: one message at a time */
    return 0;
}

static int item(hy_ctx *ctx, const hy_msg *msg)
{
    (void)msg;
    size_t len;
    const char *id = hy_param(ctx, "id", &len);
    char reply[96];
    int n = snprintf(reply, sizeof reply, "item %.*s: in stock", (int)len, id);
    return hy_reply(ctx, reply, (size_t)n);
}

static hy_kernel *connect_to(const char *url)
{
    hy_kernel *k;
    if (hy_kernel_open(&k, NULL) != 0)
        exit(1);
    const char *servers[] = {url};
    hy_nats_opts o;
    memset(&o, 0, sizeof o);
    o.servers = servers;
    o.nservers = 1;
    /* the server may still be starting (slowly, on a busy machine): try
     * for twenty seconds */
    for (int i = 0; i < 400; i++) {
        if (hy_nats_attach(k, &o) == 0)
            return k;
        struct timespec ts = {0, 50 * 1000000L};
        nanosleep(&ts, NULL);
    }
    fprintf(stderr, "no NATS server at %s: %s\n", url, hy_errdetail());
    exit(1);
}

int main(int argc, char **argv)
{
    const char *url = argc > 1 ? argv[1] : "nats://127.0.0.1:4222";
    int ready[2];
    if (pipe(ready) != 0)
        return 1;
    fflush(stdout);
    pid_t worker = fork();
    if (worker == 0) {
        hy_kernel *k = connect_to(url);
        hy_route routes[2];
        memset(routes, 0, sizeof routes);
        routes[0].pattern = "item/{id}/add";
        routes[0].handler = add;
        routes[1].pattern = "item/{id}";
        routes[1].handler = item;
        hy_subsystem_def def;
        memset(&def, 0, sizeof def);
        def.routes = routes;
        def.nroutes = 2;
        int rc = hy_subsystem_register(k, "orders", &def);
        if (rc == 0)
            rc = hy_nats_export(k, "orders", NULL);
        if (rc != 0) {
            fprintf(stderr, "worker: %s (%s)\n", hy_err_name(rc), hy_errdetail());
            _exit(1);
        }
        char c = 'r';
        if (write(ready[1], &c, 1) != 1)
            _exit(1);
        pause(); /* until the front is done */
        _exit(0);
    }
    close(ready[1]); /* so a worker that fails to start ends the read */
    char c;
    if (read(ready[0], &c, 1) != 1) {
        fprintf(stderr, "the worker did not start\n");
        return 1;
    }

    hy_kernel *k = connect_to(url);
    if (hy_nats_import(k, "orders", NULL) != 0)
        return 1;
    /* A plain send to an imported path is published on this thread; a
     * batch goes out back to back, written to the server together. */
    for (int i = 0; i < 3; i++)
        hy_send(k, "orders://item/42/add", "mug", 3);
    hy_send_item batch[2];
    memset(batch, 0, sizeof batch);
    batch[0].path = "orders://item/7/add";
    batch[0].payload = "cup";
    batch[0].len = 3;
    batch[1].path = "orders://item/8/add";
    batch[1].payload = "jug";
    batch[1].len = 3;
    size_t accepted = 0;
    hy_send_batch(k, batch, 2, &accepted);
    printf("batch: %zu accepted\n", accepted);
    /* An ask is a NATS request, answered by the worker's hy_reply. (It
     * travels on a connection of its own, so it may overtake the sends.) */
    void *reply;
    size_t len;
    int rc = hy_ask(k, "orders://item/42", NULL, 0, &reply, &len, 2000);
    printf("ask: %s\n", rc == 0 ? "ok" : hy_err_name(rc));
    if (rc == 0) {
        printf("reply: %.*s\n", (int)len, (const char *)reply);
        hy_free(reply);
    }
    hy_nats_stats s;
    hy_nats_stats_get(k, "orders", &s);
    printf("front: published %llu, acked %llu\n", (unsigned long long)s.published,
           (unsigned long long)s.acked);
    kill(worker, SIGTERM);
    waitpid(worker, NULL, 0);
    hy_kernel_close(k);
    return 0;
}
