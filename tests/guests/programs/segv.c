/* Dereferences NULL in a function two calls deep. */
#include <stddef.h>

static int read_through(int *p)
{
    return *p; /* MARK:fault */
}

static int outer(int *p)
{
    return read_through(p) + 1;
}

int main(void)
{
    return outer(NULL);
}
