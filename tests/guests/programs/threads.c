/* Three named worker threads that meet in worker_ready() while all are
 * alive. */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>

#define WORKERS 3

static pthread_barrier_t all_started;
static pthread_barrier_t may_finish;

void worker_ready(int id)
{
    printf("worker %d ready\n", id); /* MARK:ready */
}

static void *worker(void *arg)
{
    int id = (int)(long)arg;
    char name[16];
    snprintf(name, sizeof name, "worker-%d", id);
    pthread_setname_np(pthread_self(), name);
    pthread_barrier_wait(&all_started);
    if (id == 0)
        worker_ready(id);
    pthread_barrier_wait(&may_finish);
    return NULL;
}

int main(void)
{
    pthread_t threads[WORKERS];
    pthread_barrier_init(&all_started, NULL, WORKERS);
    pthread_barrier_init(&may_finish, NULL, WORKERS);
    for (long i = 0; i < WORKERS; i++)
        pthread_create(&threads[i], NULL, worker, (void *)i);
    for (int i = 0; i < WORKERS; i++)
        pthread_join(threads[i], NULL);
    puts("joined");
    return 0;
}
