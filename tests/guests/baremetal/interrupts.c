/*
 * interrupts.elf: own IDT (stubs in isr.S, C handler here), then the 8259 PIC remapped to 0x20-0x2f and PIT
 * channel 0 at ~1000 Hz: waits with hlt for 10 timer ticks.
 * int3.elf is the same with -DWITH_INT3: a ring-0 int3 through the IDT first.
 */
#include "lib.h"
#include "idt.h"

#define VEC_INT3  3
#define TICKS     10

volatile unsigned int ticks;          /* timer interrupts seen */
volatile unsigned int int3_hits;      /* #BP exceptions seen */

void isr_handler(struct int_frame *f)
{
	if (f->vector == VEC_INT3) {
		int3_hits++;
		serial_puts("int3 handled\n"); /* MARK:int3-handler */
		return;
	}
	if (f->vector == VEC_IRQ0) {
		ticks++; /* MARK:timer-tick */
		if (ticks >= TICKS)
			outb(0x21, 0xff);     /* mask everything: no tick 11 */
		outb(0x20, 0x20);             /* EOI */
		return;
	}
	other_interrupt(f);
}

int kmain(void)
{
	serial_init();
	idt_init();

#ifdef WITH_INT3
	/* Built as int3.elf only: a ring-0 int3 is exactly what some nested
	 * KVMs cannot emulate, so the timer test must not depend on it. */
	__asm__ volatile("int3" : : : "memory"); /* MARK:int3 */
	if (int3_hits != 1) {
		serial_puts("int3 not handled\n");
		return 0x7d;
	}
#endif

	pic_init();
	pit_init(1000);
	outb(0x21, 0xfe);                     /* unmask IRQ0 only */
	for (;;) {
		__asm__ volatile("cli" : : : "memory");
		if (ticks >= TICKS)
			break;
		__asm__ volatile("sti; hlt" : : : "memory"); /* MARK:hlt */
	}
	serial_puts("ticks: ");
	print_dec(ticks);
	serial_puts("\n");
	return 0x10;
}
