/* The C program of the DAP program-mode tests (tests/dap/test/program.test.js). */
#include <stdio.h>

static int square(int x)
{
    int result = x * x;
    return result; /* MARK:square-return */
}

int main(void)
{
    int total = 0; /* MARK:main-first */
    int count = 3;
    for (int i = 1; i <= count; i++)
        total += square(i); /* MARK:loop */
    printf("total=%d\n", total); /* MARK:print */
    fprintf(stderr, "tally: done\n");
    return total == 14 ? 3 : 1;
}
