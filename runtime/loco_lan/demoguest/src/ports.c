/* What both builds of the demo guest do through I/O ports (the bare machine in ring 0, Linux
 * after ioperm): QEMU's vmmouse, over the VMware backdoor, for the absolute pointer, and the PC
 * speaker (PIT channel 2) for the tone. */
#include "demo.h"

#define VMPORT_MAGIC 0x564d5868u
#define VMMOUSE_DATA 39
#define VMMOUSE_STATUS 40
#define VMMOUSE_COMMAND 41

struct regs { u32 a, b, c, d; };

static struct regs backdoor(u32 command, u32 argument) {
    struct regs r;
    __asm__ volatile("inl %%dx, %%eax"
                     : "=a"(r.a), "=b"(r.b), "=c"(r.c), "=d"(r.d)
                     : "a"(VMPORT_MAGIC), "b"(argument), "c"(command), "d"(0x5658));
    return r;
}

static struct pointer pointer;

void pointer_setup(void) {
    backdoor(VMMOUSE_COMMAND, 0x45414552u);  /* read id: enables the device */
    if ((backdoor(VMMOUSE_STATUS, 0).a & 0xffff) >= 1) backdoor(VMMOUSE_DATA, 1);
    backdoor(VMMOUSE_COMMAND, 0x53424152u);  /* absolute */
}

int pointer_pending(void) { return (backdoor(VMMOUSE_STATUS, 0).a & 0xffff) >= 4; }

int plat_pointer(struct pointer *now) {
    u32 status = backdoor(VMMOUSE_STATUS, 0).a;
    if ((status >> 16) == 0xffff) {  /* the device reset itself (e.g. after a guest reboot) */
        pointer_setup();
        return 0;
    }
    if ((status & 0xffff) < 4) return 0;
    struct regs r = backdoor(VMMOUSE_DATA, 4);  /* one packet: buttons, x, y, wheel */
    pointer.buttons = (r.a & 0x20 ? 1 : 0) | (r.a & 0x10 ? 2 : 0) | (r.a & 0x08 ? 4 : 0);
    pointer.x = (u16)r.b;
    pointer.y = (u16)r.c;
    pointer.wheel += (s32)r.d;
    *now = pointer;
    return 1;
}

void plat_tone(u16 hz) {
    if (!hz) {
        outb(0x61, inb(0x61) & ~3);
        return;
    }
    u32 divisor = 1193182u / hz;
    outb(0x43, 0xb6);
    outb(0x42, (u8)divisor);
    outb(0x42, (u8)(divisor >> 8));
    outb(0x61, inb(0x61) | 3);
}
