/*
 * rewind.c -> rewind.elf: a kernel that corrupts a pointer and then faults,
 * the subject of the record-and-replay tests ("rewind from the crash").
 *
 * fill_slots() writes one slot too many: its fifth write (MARK:corrupt, with
 * i == 4) lands on table.head, the list head right after the four slots in
 * the same struct, and leaves an unmapped address there (0x4000000000 and
 * up: 256 GiB, far above the 1 GiB identity map). sum_list() then follows
 * head and faults on it (MARK:fault): a page fault, which the kernel cannot
 * deliver (its IDT is empty, as in fault.elf): #PF -> #GP -> #DF -> triple
 * fault. The run is short (a few thousand instructions) so that replaying
 * it under QEMU's icount record/replay stays quick.
 */
#include "lib.h"

#define NOIPA __attribute__((noipa))

struct node {
	long value;
	struct node *next;
};

struct table {
	unsigned long slots[4];
	struct node *head; /* right after slots: fill_slots()'s fifth write */
};

static struct node nodes[3] = {
	{ 1, &nodes[1] },
	{ 2, &nodes[2] },
	{ 3, 0 },
};

struct table table = { { 0 }, &nodes[0] };

NOIPA void fill_slots(struct table *t, unsigned long base)
{
	for (int i = 0; i <= 4; i++) /* MARK:fill-loop (one too many) */
		t->slots[i] = base + i; /* MARK:corrupt */
}

NOIPA long sum_list(const struct node *n)
{
	long sum = 0;
	while (n) {
		sum += n->value; /* MARK:fault */
		n = n->next;
	}
	return sum;
}

int kmain(void)
{
	struct __attribute__((packed)) {
		uint16_t limit;
		uint64_t base;
	} idtr = { 0, 0 };
	long before, after;

	serial_init();
	__asm__ volatile("lidt %0" : : "m"(idtr));
	before = sum_list(table.head); /* MARK:sum-before */
	fill_slots(&table, 0x4000000000UL); /* MARK:call-fill */
	serial_puts("rewind: slots filled\n"); /* MARK:puts */
	after = sum_list(table.head); /* MARK:sum-after */
	return (int)(before + after);
}
