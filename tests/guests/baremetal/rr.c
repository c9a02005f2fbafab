/*
 * rr.elf: the record/replay test kernel (vmm/src/record).
 *
 * Timer interrupts (PIC + PIT channel 0 at 1 kHz) count `ticks`; serial
 * input interrupts (IRQ 4) are echoed as they arrive, and a line ending in
 * '\n' ends the wait for input (which also ends by itself after
 * INPUT_TICKS ticks, so a run without input finishes). `watched` is
 * written in a few places a reverse watchpoint must find. Then a pointer
 * is corrupted (MARK:corrupt) and later used (MARK:fault): the page fault
 * lands in fault_handler, which reports it and ends the VM. Built at -O0
 * so every source assignment is a store.
 */
#include "lib.h"
#include "idt.h"

#define VEC_PF      14
#define IRQ_COM1    (VEC_IRQ0 + 4)
#define INPUT_TICKS 40

struct node {
	struct node *next;
	uint64_t value;
};

volatile unsigned int ticks;          /* timer interrupts seen */
volatile unsigned int input_bytes;    /* serial bytes received */
volatile unsigned int line_done;      /* a '\n' arrived */
volatile uint64_t watched;            /* written by update_watched() */
volatile uint64_t checksum;

static struct node second = { 0, 2 };
static struct node first = { &second, 1 };
struct node *volatile head = &first;

void fault_handler(struct int_frame *f)
{
	uint64_t cr2;

	__asm__ volatile("mov %%cr2, %0" : "=r"(cr2));
	serial_puts("page fault at ");
	print_hex(cr2);
	serial_puts(" rip=");
	print_hex(f->rip);
	serial_puts("\n"); /* MARK:fault-handler */
	qemu_exit(0x7f);
}

static void serial_interrupt(void)
{
	while (inb(COM1 + 5) & 0x01) {
		char c = (char)inb(COM1);
		input_bytes++;
		serial_putc(c); /* MARK:echo */
		if (c == '\n')
			line_done = 1;
	}
}

void isr_handler(struct int_frame *f)
{
	if (f->vector == VEC_PF) {
		fault_handler(f);
		return;
	}
	if (f->vector == VEC_IRQ0) {
		ticks++; /* MARK:tick */
		outb(0x20, 0x20);
		return;
	}
	if (f->vector == IRQ_COM1) {
		serial_interrupt();
		outb(0x20, 0x20);
		return;
	}
	other_interrupt(f);
}

static void update_watched(uint64_t v)
{
	watched = v; /* MARK:watched-write */
}

static uint64_t work(unsigned int rounds)
{
	uint64_t sum = 0;
	for (unsigned int i = 0; i < rounds; i++) {
		sum += (uint64_t)i * i;
		if (i % 1000 == 999)
			update_watched(watched + sum % 7 + 1);
	}
	return sum;
}

static void wait_ticks(unsigned int n)
{
	unsigned int until = ticks + n;
	for (;;) {
		__asm__ volatile("cli" : : : "memory");
		if (ticks >= until || line_done)
			break;
		__asm__ volatile("sti; hlt" : : : "memory"); /* MARK:hlt */
	}
	__asm__ volatile("sti" : : : "memory");
}

int kmain(void)
{
	serial_init();
	idt_init();
	pic_init();
	pit_init(1000);
	outb(COM1 + 1, 0x01);                 /* IER: received data available */
	outb(COM1 + 4, 0x0b);                 /* MCR: DTR | RTS | OUT2 (IRQ enable) */
	outb(0x21, 0xee);                     /* unmask IRQ0 and IRQ4 */
	__asm__ volatile("sti" : : : "memory");

	serial_puts("rr: ready\n");
	update_watched(1);
	checksum = work(1500);
	serial_puts("rr: worked, ticks ");
	print_dec(ticks);
	serial_puts("\n");
	update_watched(100);
	wait_ticks(INPUT_TICKS);
	serial_puts("rr: input ");
	print_dec(input_bytes);
	serial_puts("\n");
	checksum += work(1000);
	update_watched(watched * 2); /* MARK:last-write */

	head->next = (struct node *)0x7ead00000000ull; /* MARK:corrupt */
	checksum += work(500);
	serial_puts("rr: walking the list\n");
	for (struct node *n = head; n; n = n->next)
		checksum += n->value; /* MARK:fault */
	return 0x10;
}
