#include "lib.h"

void serial_init(void)
{
	outb(COM1 + 1, 0x00);   /* IER: no interrupts */
	outb(COM1 + 3, 0x80);   /* LCR: DLAB */
	outb(COM1 + 0, 0x01);   /* DLL: 115200 baud */
	outb(COM1 + 1, 0x00);   /* DLM */
	outb(COM1 + 3, 0x03);   /* LCR: 8N1 */
	outb(COM1 + 2, 0xc7);   /* FCR: enable + clear FIFOs */
	outb(COM1 + 4, 0x03);   /* MCR: DTR | RTS */
}

void serial_putc(char c)
{
	while (!(inb(COM1 + 5) & 0x20))   /* LSR: THR empty */
		;
	outb(COM1, (uint8_t)c);
}

void serial_puts(const char *s)
{
	while (*s)
		serial_putc(*s++);
}

void print_hex(uint64_t v)
{
	char buf[16];
	int n = 0;

	serial_puts("0x");
	do {
		buf[n++] = "0123456789abcdef"[v & 0xf];
		v >>= 4;
	} while (v);
	while (n)
		serial_putc(buf[--n]);
}

void print_dec(int64_t v)
{
	char buf[20];
	int n = 0;
	uint64_t u = (uint64_t)v;

	if (v < 0) {
		serial_putc('-');
		u = -u;
	}
	do {
		buf[n++] = (char)('0' + u % 10);
		u /= 10;
	} while (u);
	while (n)
		serial_putc(buf[--n]);
}

void qemu_exit(uint32_t v)
{
	outl(QEMU_EXIT_PORT, v);
	for (;;)
		__asm__ volatile("cli; hlt");
}

void *memset(void *d, int c, size_t n)
{
	unsigned char *p = d;
	while (n--)
		*p++ = (unsigned char)c;
	return d;
}

void *memcpy(void *d, const void *s, size_t n)
{
	unsigned char *p = d;
	const unsigned char *q = s;
	while (n--)
		*p++ = *q++;
	return d;
}

void *memmove(void *d, const void *s, size_t n)
{
	unsigned char *p = d;
	const unsigned char *q = s;
	if (p < q) {
		while (n--)
			*p++ = *q++;
	} else {
		while (n--)
			p[n] = q[n];
	}
	return d;
}

int memcmp(const void *a, const void *b, size_t n)
{
	const unsigned char *p = a, *q = b;
	for (; n; n--, p++, q++)
		if (*p != *q)
			return *p - *q;
	return 0;
}
