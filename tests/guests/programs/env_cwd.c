/* Prints one environment variable and its working directory, for gdb's
 * `set environment` and `set cwd` before `run` (extended-remote). */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

int main(void)
{
    char cwd[512];
    const char *value = getenv("VMDBG_TEST_VALUE");
    printf("value=%s cwd=%s\n", value ? value : "(unset)", getcwd(cwd, sizeof cwd));
    return 0;
}
