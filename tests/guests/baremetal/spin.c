/* spin.elf: runs until a debugger lets it go, so a test can interrupt a
 * running guest (Ctrl-C), write its memory, and detach. Built at -O0. */
#include "lib.h"

volatile unsigned long spins;        /* proves the guest ran between stops */
volatile int released;               /* a debugger sets this to 1 */

int kmain(void)
{
	serial_init();
	serial_puts("spin: waiting to be released\n");
	while (!released)
		spins++; /* MARK:spin-loop */
	serial_puts("spin: released\n");
	return 0x15;
}
