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

#define NVEC      48
#define SEL_CODE  0x08
#define VEC_IRQ0  0x20
#define WORDS     512
#define STEPS     300

struct int_frame {
	uint64_t r15, r14, r13, r12, r11, r10, r9, r8;
	uint64_t rbp, rdi, rsi, rdx, rcx, rbx, rax;
	uint64_t vector, error;
	uint64_t rip, cs, rflags, rsp, ss;
};

struct idt_gate {
	uint16_t off_lo;
	uint16_t sel;
	uint8_t ist;
	uint8_t type_attr;
	uint16_t off_mid;
	uint32_t off_hi;
	uint32_t zero;
} __attribute__((packed));

struct __attribute__((packed)) idt_ptr {
	uint16_t limit;
	uint64_t base;
};

extern const uint64_t isr_stubs[NVEC];

static struct idt_gate idt[NVEC] __attribute__((aligned(16)));
volatile uint64_t ticks;
uint64_t data[WORDS];

void isr_handler(struct int_frame *f);

void isr_handler(struct int_frame *f)
{
	if (f->vector == VEC_IRQ0) {
		ticks++;
		outb(0x20, 0x20);
		return;
	}
	if (f->vector > VEC_IRQ0 && f->vector < NVEC) {
		if (f->vector >= 0x28)
			outb(0xa0, 0x20);
		outb(0x20, 0x20);
		return;
	}
	serial_puts("unexpected exception ");
	print_dec((int64_t)f->vector);
	serial_puts(" error=");
	print_hex(f->error);
	serial_puts(" rip=");
	print_hex(f->rip);
	serial_puts(" cs=");
	print_hex(f->cs);
	serial_puts(" ss=");
	print_hex(f->ss);
	serial_puts("\n");
	qemu_exit(0x7f);
}

static void idt_init(void)
{
	struct idt_ptr p;

	for (int v = 0; v < NVEC; v++) {
		uint64_t a = isr_stubs[v];
		idt[v].off_lo = (uint16_t)a;
		idt[v].sel = SEL_CODE;
		idt[v].ist = 0;
		idt[v].type_attr = 0x8e;
		idt[v].off_mid = (uint16_t)(a >> 16);
		idt[v].off_hi = (uint32_t)(a >> 32);
		idt[v].zero = 0;
	}
	p.limit = sizeof(idt) - 1;
	p.base = (uint64_t)idt;
	__asm__ volatile("lidt %0" : : "m"(p) : "memory");
}

static void pic_pit_init(unsigned int hz)
{
	unsigned int div = 1193182 / hz;

	outb(0x21, 0xff);
	outb(0xa1, 0xff);
	outb(0x20, 0x11);
	outb(0xa0, 0x11);
	outb(0x21, 0x20);
	outb(0xa1, 0x28);
	outb(0x21, 0x04);
	outb(0xa1, 0x02);
	outb(0x21, 0x01);
	outb(0xa1, 0x01);
	outb(0x21, 0xff);
	outb(0xa1, 0xff);
	outb(0x43, 0x34);
	outb(0x40, (uint8_t)div);
	outb(0x40, (uint8_t)(div >> 8));
	outb(0x21, 0xfe);                     /* IRQ0 only */
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
	pic_pit_init(1000);
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
