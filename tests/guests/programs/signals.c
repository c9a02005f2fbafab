/* Raises SIGUSR1 (which its handler records), then aborts: gdb must
 * report both, deliver SIGUSR1 to the handler when continued, and see the
 * program die of SIGABRT. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

static volatile sig_atomic_t received;

static void on_usr1(int signal)
{
    received = signal;
}

int main(void)
{
    signal(SIGUSR1, on_usr1);
    raise(SIGUSR1);
    printf("handler got %d\n", (int)received);
    fflush(stdout);
    abort(); /* MARK:abort */
}
