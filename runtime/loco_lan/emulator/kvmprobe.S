/* The KVM probe's boot sector (runner.KVM_PROBE_SECTOR holds its bytes; a unit test assembles
 * this file and compares). It does what every guest does first: protected mode, an IDT, the
 * BIOS timer's interrupt taken and returned from with IRET, and then writes to QEMU's
 * isa-debug-exit port (QEMU exits with status 99). Some nested KVMs run real mode but stop on
 * the first IRET with "KVM internal error. Suberror: 1": those must fall back to TCG.
 * Build: as --32 -o p.o kvmprobe.S && objcopy -O binary -j .text p.o p.bin */
.code16
.globl _start
_start:
  cli
  xor %ax, %ax
  mov %ax, %ds
  lgdt gdtr - _start + 0x7c00
  mov %cr0, %eax
  or $1, %al
  mov %eax, %cr0
  ljmp $0x08, $(pm - _start + 0x7c00)
.code32
pm:
  mov $0x10, %ax
  mov %ax, %ds
  mov %ax, %es
  mov %ax, %ss
  mov $0x7000, %esp
  /* IDT entry 8 at 0x1040: IRQ 0, where the BIOS leaves the timer, to tick */
  movl $((tick - _start + 0x7c00) & 0xffff) | (0x08 << 16), 0x1040
  movl $0x8e00, 0x1044
  lidt idtr - _start + 0x7c00
  sti
wait:
  cmpb $0, 0x2000
  je wait
  cli
  mov $0x31, %al  /* isa-debug-exit: status (0x31 << 1) | 1 = 99 */
  out %al, $0xf4
  hlt
tick:
  push %eax
  movb $1, 0x2000
  mov $0x20, %al  /* end of interrupt */
  out %al, $0x20
  pop %eax
  iret
.align 8
gdt:
  .quad 0
  .quad 0x00cf9a000000ffff  /* code: flat 4 GiB */
  .quad 0x00cf92000000ffff  /* data: flat 4 GiB */
gdtr:
  .word 23
  .long gdt - _start + 0x7c00
idtr:
  .word 0x47
  .long 0x1000
.org 510
  .byte 0x55, 0xaa
