/*
 * snapshot.elf: the snapshot tests' guest. Takes PIT timer interrupts at
 * ~1000 Hz through its own IDT and 8259 PIC, and on every tick advances a
 * deterministic computation over 4 KiB of its memory, printing
 *   n=<step> hash=<FNV-1a of the whole buffer> ticks=<interrupts seen>
 * for each step. n and hash depend only on the step, never on timing, so a
 * run restored from a snapshot must print exactly the lines an untouched
 * run prints for the same n; ticks must keep growing. Exits with 0x11
 * (status 35) after STEPS steps.
 */
#include "lib.h"
#include "idt.h"

#define WORDS     512
#define STEPS     300

volatile uint64_t ticks;
uint64_t data[WORDS];

void isr_handler(struct int_frame *f)
{
	if (f->vector == VEC_IRQ0) {
		ticks++;
		outb(0x20, 0x20);
		return;
	}
	other_interrupt(f);
}

/* One step of the computation: stir 16 words, then hash them all. */
static uint64_t step(uint64_t n)
{
	uint64_t h = 0xcbf29ce484222325ull;

	for (uint64_t k = 0; k < 16; k++) {
		uint64_t i = ((n * 16 + k) * 2654435761ull) % WORDS;
		data[i] = data[i] * 6364136223846793005ull + n + k;
	}
	for (int i = 0; i < WORDS; i++) {
		h ^= data[i];
		h *= 0x100000001b3ull;
	}
	return h;
}

/* Called once per step: a place for breakpoints. */
void __attribute__((noinline)) report(uint64_t n, uint64_t hash)
{
	serial_puts("n=");
	print_dec((int64_t)n);
	serial_puts(" hash=");
	print_hex(hash);
	serial_puts(" ticks=");
	print_dec((int64_t)ticks);
	serial_puts("\n");
}

int kmain(void)
{
	serial_init();
	idt_init();
	pic_init();
	pit_init(1000);
	outb(0x21, 0xfe);                     /* unmask IRQ0 only */
	for (uint64_t n = 1; n <= STEPS; n++) {
		uint64_t seen = ticks;

		/* Wait for the next timer interrupt. */
		for (;;) {
			__asm__ volatile("cli" : : : "memory");
			if (ticks != seen)
				break;
			__asm__ volatile("sti; hlt" : : : "memory");
		}
		__asm__ volatile("sti" : : : "memory");
		report(n, step(n));
	}
	return 0x11;
}
