/*
 * Interrupt entry stubs for interrupts.elf: vectors 0..47.
 * Each stub pushes a dummy error code (when the CPU does not push one) and
 * the vector number, then jumps to isr_common, which saves all GPRs and
 * calls isr_handler(struct int_frame *).
 *
 * Everything carries CFI marked as a signal frame, so gdb can unwind from
 * isr_handler (or from any instruction here) into the interrupted code.
 * CFA = the address just above the CPU-pushed frame (old SS), so:
 * ss at CFA-8, rsp CFA-16, rflags CFA-24, cs CFA-32, rip CFA-40.
 */
        .text

.macro CPU_FRAME_CFI
        .cfi_offset rip, -40
        .cfi_offset 51, -32             /* cs */
        .cfi_offset 49, -24             /* rflags */
        .cfi_offset rsp, -16
        .cfi_offset 52, -8              /* ss */
.endm

.macro STUB n
        .p2align 4
        .type   isr_stub_\n, @function
isr_stub_\n:
        .cfi_startproc simple
        .cfi_signal_frame
.if (\n == 8) || ((\n >= 10) && (\n <= 14)) || (\n == 17) || (\n == 21) || (\n == 29) || (\n == 30)
        .cfi_def_cfa rsp, 48            /* CPU pushed an error code */
        CPU_FRAME_CFI
.else
        .cfi_def_cfa rsp, 40
        CPU_FRAME_CFI
        pushq   $0
        .cfi_adjust_cfa_offset 8
.endif
        pushq   $\n
        .cfi_adjust_cfa_offset 8
        jmp     isr_common
        .cfi_endproc
        .size   isr_stub_\n, . - isr_stub_\n
.endm

.macro PUSHREG r
        pushq   %\r
        .cfi_adjust_cfa_offset 8
        .cfi_rel_offset \r, 0
.endm

.macro POPREG r
        popq    %\r
        .cfi_adjust_cfa_offset -8
        .cfi_same_value \r
.endm

.irp n, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31,32,33,34,35,36,37,38,39,40,41,42,43,44,45,46,47
        STUB \n
.endr

/*
 * Stack at isr_common (from RSP): vector 0, error 8, rip 16, cs 24,
 * rflags 32, rsp 40, ss 48. After the 15 pushes, RSP points at a
 * struct int_frame (r15 first).
 */
        .p2align 4
        .type   isr_common, @function
isr_common:
        .cfi_startproc simple
        .cfi_signal_frame
        .cfi_def_cfa rsp, 56
        CPU_FRAME_CFI
        PUSHREG rax
        PUSHREG rbx
        PUSHREG rcx
        PUSHREG rdx
        PUSHREG rsi
        PUSHREG rdi
        PUSHREG rbp
        PUSHREG r8
        PUSHREG r9
        PUSHREG r10
        PUSHREG r11
        PUSHREG r12
        PUSHREG r13
        PUSHREG r14
        PUSHREG r15
        movq    %rsp, %rdi
        call    isr_handler
        POPREG  r15
        POPREG  r14
        POPREG  r13
        POPREG  r12
        POPREG  r11
        POPREG  r10
        POPREG  r9
        POPREG  r8
        POPREG  rbp
        POPREG  rdi
        POPREG  rsi
        POPREG  rdx
        POPREG  rcx
        POPREG  rbx
        POPREG  rax
        addq    $16, %rsp               /* vector + error code */
        .cfi_adjust_cfa_offset -16
        iretq
        .cfi_endproc
        .size   isr_common, . - isr_common

        .section .rodata
        .p2align 3
        .globl  isr_stubs
isr_stubs:
.irp n, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31,32,33,34,35,36,37,38,39,40,41,42,43,44,45,46,47
        .quad   isr_stub_\n
.endr

        .section .note.GNU-stack, "", @progbits
