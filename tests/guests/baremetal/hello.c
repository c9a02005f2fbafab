/* hello.elf: the smallest useful guest. Built at -O0. */
#include "lib.h"

int kmain(void)
{
	serial_init();
	serial_puts("Hello from a vmdbg bare-metal guest\n"); /* MARK:hello-puts */
	return 0x2a; /* MARK:hello-return */
}
