/*
 * lines.c -> lines-O0.elf: source lines for range stepping.
 *
 * MARK:long-line is one statement of more than 20 instructions and no
 * call: a `next` over it is one `vCont;r` round trip on a stub that range
 * steps, and 20+ `vCont;s` on one that does not. The lines after it leave
 * a stepping range every other way: a call (stepped over), a loop inside
 * one line, a return. The globals are volatile so -O0 and gdb agree on
 * every load.
 */
#include "lib.h"

volatile unsigned long a = 3, b = 5, c = 7, d;
/* A debugger makes the spin line below loop as long as it likes. */
volatile unsigned long spin_for = 3, spun;

__attribute__((noipa)) unsigned long twice(unsigned long x)
{
	return 2 * x; /* MARK:twice */
}

int kmain(void)
{
	serial_init();
	d = a + 1; /* MARK:before-long */
	d = (a * b + c) ^ (a << 3) ^ (b >> 1) ^ (c * a) ^ (b + c * 2) ^ (a - b) ^ (c | a); /* MARK:long-line */
	d = twice(a) + twice(b) * c; /* MARK:call-line */
	for (int i = 0; i < 3; i++) d += a * i; /* MARK:loop-line */
	for (spun = 0; spun < spin_for; spun++) ; /* MARK:spin-line */
	serial_puts("lines: done\n"); /* MARK:after */
	return (int)(d & 0x7f);
}
