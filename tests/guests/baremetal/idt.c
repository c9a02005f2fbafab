/* The IDT, PIC and PIT set-up shared by interrupts.elf, int3.elf and
 * snapshot.elf (see idt.h). */
#include "lib.h"
#include "idt.h"

#define SEL_CODE  0x08              /* 64-bit code selector from start.S */

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

void idt_init(void)
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

void pic_init(void)
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

void pit_init(unsigned int hz)
{
	unsigned int div = 1193182 / hz;

	outb(0x43, 0x34);                     /* ch0, lo/hi byte, mode 2 */
	outb(0x40, (uint8_t)div);
	outb(0x40, (uint8_t)(div >> 8));
}

void other_interrupt(struct int_frame *f)
{
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
