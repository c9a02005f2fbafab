/* Locals, a struct, calls to step into and out of, and an exit code. */
#include <stdio.h>

struct point {
    int x;
    int y;
};

static int square(int v)
{
    int result = v * v; /* MARK:square */
    return result;
}

int main(void)
{
    struct point p = { 3, 4 };
    int total = 0; /* MARK:main_first */
    total = square(p.x) + square(p.y); /* MARK:call */
    printf("total=%d\n", total); /* MARK:after_call */
    return total == 25 ? 7 : 1;
}
