/*
 * fault.elf: no IDT at all. Prints a line and executes ud2. The #UD cannot
 * be delivered (IDT limit 0) -> #GP -> #DF -> triple fault (shutdown).
 * We load an empty IDT explicitly so the result does not depend on
 * whatever IDTR the firmware/VMM left behind.
 */
#include "lib.h"

int kmain(void)
{
	struct __attribute__((packed)) {
		uint16_t limit;
		uint64_t base;
	} idtr = { 0, 0 };

	serial_init();
	__asm__ volatile("lidt %0" : : "m"(idtr));
	serial_puts("about to fault\n");
	__asm__ volatile("ud2"); /* MARK:ud2 */
	serial_puts("still alive?!\n");
	return 0x7e;
}
