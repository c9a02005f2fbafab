/* echo.elf: reads one line from COM1 and prints it back, so a test can type
 * into the guest's console (the editor's console terminal). Built at -O0. */
#include "lib.h"

#define COM1 0x3f8

static char line[64];

/* Here, not in lib.c: the other kernels' inlining (which tests check) must
 * not change because echo needs input. */
static char serial_getc(void)
{
	while (!(inb(COM1 + 5) & 0x01))   /* LSR: data ready */
		;
	return (char)inb(COM1);
}

int kmain(void)
{
	unsigned int n = 0;
	char c;

	serial_init();
	serial_puts("echo: type a line\n");
	while ((c = serial_getc()) != '\n' && c != '\r' && n < sizeof(line) - 1)
		line[n++] = c; /* MARK:echo-read */
	line[n] = 0;
	serial_puts("echo: got \"");
	serial_puts(line);
	serial_puts("\"\n");
	return n;
}
