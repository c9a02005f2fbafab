/* Tiny shared runtime for the vmdbg bare-metal test kernels. */
#ifndef VMDBG_BAREMETAL_LIB_H
#define VMDBG_BAREMETAL_LIB_H

#include <stddef.h>
#include <stdint.h>

#define COM1 0x3f8
#define QEMU_EXIT_PORT 0xf4

static inline void outb(uint16_t port, uint8_t v)
{
	__asm__ volatile("outb %0, %1" : : "a"(v), "Nd"(port));
}

static inline void outl(uint16_t port, uint32_t v)
{
	__asm__ volatile("outl %0, %1" : : "a"(v), "Nd"(port));
}

static inline uint8_t inb(uint16_t port)
{
	uint8_t v;
	__asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port));
	return v;
}

/* Each kernel provides this; _start64 calls qemu_exit(kmain()). */
int kmain(void);

void serial_init(void);
void serial_putc(char c);
void serial_puts(const char *s);      /* no "\n" -> "\r\n" translation */
void print_hex(uint64_t v);           /* "0x" followed by lowercase hex */
void print_dec(int64_t v);

/* outl(0xf4, v): QEMU isa-debug-exit, process status (v << 1) | 1.
 * Then cli; hlt forever. */
__attribute__((noreturn)) void qemu_exit(uint32_t v);

/* gcc may emit calls to these even with -ffreestanding. */
void *memset(void *d, int c, size_t n);
void *memcpy(void *d, const void *s, size_t n);
void *memmove(void *d, const void *s, size_t n);
int memcmp(const void *a, const void *b, size_t n);

#endif
