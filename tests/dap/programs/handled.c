/* The signal program of the DAP program-mode tests (tests/dap/test/
 * program.test.js). SIGWINCH and SIGCHLD must reach their handlers without
 * stopping the session (gdb's default: nostop, pass); SIGUSR1 stops it,
 * and its handler runs when the session continues. Exits 0 only if every
 * handler ran once. */
#include <signal.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

static volatile sig_atomic_t winch, chld, usr1;

static void on_winch(int signal)
{
    (void)signal;
    winch++;
}

static void on_chld(int signal)
{
    (void)signal;
    chld++;
}

static void on_usr1(int signal)
{
    static const char said[] = "SIGUSR1 handler ran\n";
    (void)signal;
    usr1++;
    if (write(1, said, sizeof said - 1) < 0)
        usr1 = 100;
}

int main(void)
{
    signal(SIGWINCH, on_winch);
    signal(SIGCHLD, on_chld);
    signal(SIGUSR1, on_usr1);
    raise(SIGWINCH);
    pid_t child = fork();
    if (child == 0)
        _exit(0);
    waitpid(child, NULL, 0);
    raise(SIGUSR1); /* MARK:raise-usr1 */
    printf("winch=%d chld=%d usr1=%d\n", (int)winch, (int)chld, (int)usr1);
    return winch == 1 && chld == 1 && usr1 == 1 ? 0 : 1;
}
