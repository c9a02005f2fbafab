/* Forks a child that runs the same code as the parent: a breakpoint the
 * debugger put there must not kill the (untraced) child. */
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

void after_fork(int is_child)
{
    printf("after_fork in the %s\n", is_child ? "child" : "parent"); /* MARK:after_fork */
    fflush(stdout);
}

int main(void)
{
    pid_t child = fork();
    if (child == 0) {
        after_fork(1);
        _exit(3);
    }
    int status = 0;
    waitpid(child, &status, 0);
    after_fork(0);
    printf("child exit %d\n", WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status));
    return 0;
}
