/*
 * interrupts.elf: own IDT (stubs in isr.S, C handler here), then the 8259 PIC remapped to 0x20-0x2f and PIT
 * channel 0 at ~1000 Hz: waits with hlt for 10 timer ticks.
 * int3.elf is the same with -DWITH_INT3: a ring-0 int3 through the IDT first.
 */
#include "lib.h"

#define NVEC      48
#define SEL_CODE  0x08              /* 64-bit code selector from start.S */
#define VEC_INT3  3
#define VEC_IRQ0  0x20
#define TICKS     10

struct int_frame {
	uint64_t r15, r14, r13, r12, r11, r10, r9, r8;
	uint64_t rbp, rdi, rsi, rdx, rcx, rbx, rax;
	uint64_t vector, error;
	uint64_t rip, cs, rflags, rsp, ss;   /* pushed by the CPU */
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
volatile unsigned int ticks;          /* timer interrupts seen */
volatile unsigned int int3_hits;      /* #BP exceptions seen */

void isr_handler(struct int_frame *f);

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
		idt[v].type_attr = 0x8e;      /* present, DPL0, 64-bit interrupt gate */
		idt[v].off_mid = (uint16_t)(a >> 16);
		idt[v].off_hi = (uint32_t)(a >> 32);
		idt[v].zero = 0;
	}
	p.limit = sizeof(idt) - 1;
	p.base = (uint64_t)idt;
	__asm__ volatile("lidt %0" : : "m"(p) : "memory");
}

static void pic_init(void)
{
	outb(0x21, 0xff);                     /* mask all while reprogramming */
	outb(0xa1, 0xff);
	outb(0x20, 0x11);                     /* ICW1: init, ICW4 follows */
	outb(0xa0, 0x11);
	outb(0x21, 0x20);                     /* ICW2: master base 0x20 */
	outb(0xa1, 0x28);                     /*       slave base 0x28 */
	outb(0x21, 0x04);                     /* ICW3: slave on IRQ2 */
	outb(0xa1, 0x02);
	outb(0x21, 0x01);                     /* ICW4: 8086 mode */
	outb(0xa1, 0x01);
	outb(0x21, 0xff);                     /* still all masked */
	outb(0xa1, 0xff);
}

static void pit_init(unsigned int hz)
{
	unsigned int div = 1193182 / hz;

	outb(0x43, 0x34);                     /* ch0, lo/hi byte, mode 2 */
	outb(0x40, (uint8_t)div);
	outb(0x40, (uint8_t)(div >> 8));
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
