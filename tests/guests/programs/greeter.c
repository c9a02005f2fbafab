/* Linked against its own libgreet.so (greet.c) through an $ORIGIN RUNPATH:
 * `vmdbg run --copy` must resolve the library like ld.so and bring it. */
#include <stdio.h>

const char *greeting(void);

int main(int argc, char **argv) {
    printf("%s, %s\n", greeting(), argc > 1 ? argv[1] : "nobody");
    return 3;
}
