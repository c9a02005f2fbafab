/*
 * Shared entry code for the vmdbg bare-metal test kernels.
 *
 * Two ways in:
 *  _start32  PVH entry (XEN_ELFNOTE_PHYS32_ENTRY note below). 32-bit
 *            protected mode, paging off, flat segments, EBX = start_info
 *            (ignored). Builds an identity map of the first 1 GiB with
 *            2 MiB pages, enables long mode and jumps to _start64.
 *            This is how `qemu-system-x86_64 -kernel x.elf` boots us.
 *  _start64  ELF e_entry. Entered in 64-bit long mode with an identity map
 *            of low memory, interrupts off, unspecified GDT and RSP.
 *            Loads its own GDT and stack, zeroes .bss (but not .bss.boot,
 *            which holds the page tables and stack), calls kmain() and
 *            exits through qemu_exit(kmain()).
 */

#define SEL_CODE64 0x08
#define SEL_DATA   0x10
#define SEL_CODE32 0x18

#define XEN_ELFNOTE_PHYS32_ENTRY 18

        .section .note.Xen, "a", @note
        .p2align 2
        .long   4                       /* namesz: "Xen\0" */
        .long   4                       /* descsz */
        .long   XEN_ELFNOTE_PHYS32_ENTRY
        .asciz  "Xen"
        .long   _start32                /* physical entry address */

/* ------------------------------------------------------------------ */
        .section .text.boot, "ax", @progbits
        .code32
        .globl  _start32
        .type   _start32, @function
_start32:
        cli
        cld
        lgdt    gdt_ptr                 /* 32-bit lgdt reads limit + low 4 base bytes */
        ljmp    $SEL_CODE32, $1f
1:      movl    $SEL_DATA, %eax
        movl    %eax, %ds
        movl    %eax, %es
        movl    %eax, %ss
        movl    %eax, %fs
        movl    %eax, %gs

        /* Zero the three page-table pages. */
        movl    $boot_pml4, %edi
        xorl    %eax, %eax
        movl    $(3 * 4096 / 4), %ecx
        rep stosl

        /* PML4[0] -> PDPT, PDPT[0] -> PD, PD[i] = i * 2 MiB | PS|RW|P */
        movl    $boot_pdpt, %eax
        orl     $0x3, %eax
        movl    %eax, boot_pml4
        movl    $boot_pd, %eax
        orl     $0x3, %eax
        movl    %eax, boot_pdpt
        movl    $boot_pd, %edi
        movl    $0x83, %eax
        movl    $512, %ecx
2:      movl    %eax, (%edi)
        movl    $0, 4(%edi)
        addl    $0x200000, %eax
        addl    $8, %edi
        loop    2b

        /* CR4.PAE */
        movl    %cr4, %eax
        orl     $(1 << 5), %eax
        movl    %eax, %cr4
        /* CR3 */
        movl    $boot_pml4, %eax
        movl    %eax, %cr3
        /* EFER.LME */
        movl    $0xc0000080, %ecx
        rdmsr
        orl     $(1 << 8), %eax
        wrmsr
        /* CR0.PG | CR0.PE */
        movl    %cr0, %eax
        orl     $((1 << 31) | 1), %eax
        movl    %eax, %cr0
        /* Now in compatibility mode: far jump into 64-bit code. */
        ljmp    $SEL_CODE64, $_start64
        .size   _start32, . - _start32

/* ------------------------------------------------------------------ */
        .code64
        .globl  _start64
        .type   _start64, @function
_start64:
        .cfi_startproc
        .cfi_undefined rip              /* outermost frame for unwinders */
        cli
        cld
        /* Our own stack first: the caller's RSP is unspecified. */
        movabsq $boot_stack_top, %rsp
        xorl    %ebp, %ebp
        /* Our own GDT, then reload every segment register. */
        lgdt    gdt_ptr(%rip)
        movl    $SEL_DATA, %eax
        movl    %eax, %ds
        movl    %eax, %es
        movl    %eax, %ss
        movl    %eax, %fs
        movl    %eax, %gs
        pushq   $SEL_CODE64
        leaq    1f(%rip), %rax
        pushq   %rax
        lretq
1:
        /* Zero .bss (the page tables and stack live in .bss.boot). */
        leaq    __bss_start(%rip), %rdi
        leaq    __bss_end(%rip), %rcx
        subq    %rdi, %rcx
        xorl    %eax, %eax
        rep stosb

        call    kmain
        movl    %eax, %edi
        call    qemu_exit               /* does not return */
3:      cli
        hlt
        jmp     3b
        .cfi_endproc
        .size   _start64, . - _start64

/* ------------------------------------------------------------------ */
        .section .rodata
        .p2align 3
gdt:
        .quad   0                       /* 0x00 null */
        /* Accessed bits preset so the CPU never writes to this table. */
        .quad   0x00af9b000000ffff      /* 0x08 64-bit code, DPL0 */
        .quad   0x00cf93000000ffff      /* 0x10 flat data */
        .quad   0x00cf9b000000ffff      /* 0x18 flat 32-bit code */
gdt_end:
        .p2align 3
gdt_ptr:
        .word   gdt_end - gdt - 1
        .quad   gdt                     /* < 4 GiB, so usable by 32-bit lgdt too */

/* ------------------------------------------------------------------ */
        .section .bss.boot, "aw", @nobits
        .p2align 12
        .globl  boot_pml4, boot_pdpt, boot_pd
boot_pml4:      .skip 4096
boot_pdpt:      .skip 4096
boot_pd:        .skip 4096
        .globl  boot_stack_bottom, boot_stack_top
boot_stack_bottom:
        .skip   65536
boot_stack_top:

        .section .note.GNU-stack, "", @progbits
