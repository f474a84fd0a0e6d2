/* The demo guest's boot sector: load the program that follows it on the disk, switch to 32-bit
 * protected mode and call demo_main. The program, its data and the config blob the builder
 * appends are loaded as one block right behind this sector (linked at 0x7e00). */
        .code16
        .section .boot, "ax"
        .globl _start
_start:
        cli
        xorw    %ax, %ax
        movw    %ax, %ds
        movw    %ax, %es
        movw    %ax, %ss
        movw    $0x7c00, %sp
        sti
        /* INT 13h AH=42h: read sectors 1..N (the count is patched in by the builder) */
        movw    $dap, %si
        movb    $0x42, %ah
        int     $0x13
        jc      .Lstuck
        /* fast A20 */
        inb     $0x92, %al
        orb     $2, %al
        andb    $0xfe, %al
        outb    %al, $0x92
        cli
        lgdtl   gdt_descriptor
        movl    %cr0, %eax
        orl     $1, %eax
        movl    %eax, %cr0
        ljmpl   $0x08, $protected
.Lstuck:
        hlt
        jmp     .Lstuck

        .code32
protected:
        movw    $0x10, %ax
        movw    %ax, %ds
        movw    %ax, %es
        movw    %ax, %fs
        movw    %ax, %gs
        movw    %ax, %ss
        movl    $0x90000, %esp
        call    demo_main
1:      hlt
        jmp     1b

        .p2align 3
gdt:
        .quad   0
        .quad   0x00cf9a000000ffff      /* code: base 0, 4 GiB, ring 0 */
        .quad   0x00cf92000000ffff      /* data */
gdt_descriptor:
        .word   gdt_descriptor - gdt - 1
        .long   gdt

        .p2align 2
dap:
        .byte   16, 0
        .globl  sector_count
sector_count:
        .word   0                       /* patched: sectors after this one */
        .word   0, 0x07e0               /* buffer offset, segment: 0x7e00, up to 64 KiB */
        .quad   1                       /* first LBA */

        .org    510
        .word   0xaa55

/* Interrupt entry points: save what C may clobber, call the handler, acknowledge the PIC. */
        .text
        .globl  isr_timer, isr_keyboard, isr_ignore, isr_spurious_slave
isr_timer:
        pushal
        call    on_timer
        movb    $0x20, %al
        outb    %al, $0x20
        popal
        iretl
isr_keyboard:
        pushal
        call    on_keyboard
        movb    $0x20, %al
        outb    %al, $0x20
        popal
        iretl
isr_spurious_slave:
        pushl   %eax
        movb    $0x20, %al
        outb    %al, $0xa0
        outb    %al, $0x20
        popl    %eax
        iretl
isr_ignore:
        iretl

        .section .note.GNU-stack, "", @progbits
