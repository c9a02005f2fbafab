/* Interrupts for the bare-metal test kernels: an IDT whose 48 vectors go
 * through isr.S to the kernel's isr_handler(), the 8259 PIC pair remapped
 * to 0x20-0x2f, and PIT channel 0 as a periodic timer. */
#ifndef VMDBG_BAREMETAL_IDT_H
#define VMDBG_BAREMETAL_IDT_H

#include <stdint.h>

#define NVEC      48
#define VEC_IRQ0  0x20

struct int_frame {
	uint64_t r15, r14, r13, r12, r11, r10, r9, r8;
	uint64_t rbp, rdi, rsi, rdx, rcx, rbx, rax;
	uint64_t vector, error;
	uint64_t rip, cs, rflags, rsp, ss;   /* pushed by the CPU */
};

/* Each kernel that links idt.o provides this; isr.S calls it. */
void isr_handler(struct int_frame *f);

/* For isr_handler's vectors it does not handle itself: acknowledges any
 * other PIC interrupt; reports an exception on COM1 and exits with 0x7f. */
void other_interrupt(struct int_frame *f);

/* Loads the IDT: every vector to its isr.S stub. */
void idt_init(void);
/* Remaps the PICs to 0x20-0x2f, every line masked. */
void pic_init(void);
/* PIT channel 0 in mode 2 at about `hz` interrupts a second. */
void pit_init(unsigned int hz);

#endif
