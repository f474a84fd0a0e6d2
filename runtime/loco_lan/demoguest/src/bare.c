/* The demo guest on the bare machine QEMU emulates for the snapshot (pc, std VGA, i8042, PIT,
 * PC speaker): no BIOS calls after boot. Screen: the Bochs VBE registers and the linear frame
 * buffer of the VGA PCI device. Time: the PIT at 250 Hz on IRQ 0. Keys: IRQ 1. Pointer: QEMU's
 * vmmouse (VMware backdoor), absolute, polled; it is the device that makes QEMU's VNC server
 * deliver the viewer's pointer position as is. Idle means hlt, so an idle guest costs no CPU. */
#include "demo.h"

extern const struct config _image_end;
extern u8 _bss_start[], _bss_end[];
extern void isr_timer(void), isr_keyboard(void), isr_ignore(void), isr_spurious_slave(void);

static inline void outw(u16 port, u16 v) { __asm__ volatile("outw %0, %1" : : "a"(v), "Nd"(port)); }
static inline void outl(u16 port, u32 v) { __asm__ volatile("outl %0, %1" : : "a"(v), "Nd"(port)); }
static inline u32 inl(u16 port) { u32 v; __asm__ volatile("inl %1, %0" : "=a"(v) : "Nd"(port)); return v; }

/* -- interrupts -------------------------------------------------------------------------------- */

struct __attribute__((packed)) gate { u16 offset_low, selector; u8 zero, type; u16 offset_high; };
#define TICK_MS 4
#define PIT_DIVISOR 4773
static struct gate idt[256];
static volatile u32 millis;
static volatile u8 keys[256];
static volatile u8 key_head, key_tail;

void on_timer(void) { millis += TICK_MS; }

void on_keyboard(void) {
    u8 status;
    while ((status = inb(0x64)) & 1) {
        u8 data = inb(0x60);
        if (!(status & 0x20) && (u8)(key_head + 1) != key_tail) keys[key_head++] = data;  /* 0x20: mouse byte */
    }
}

static void set_gate(int vector, void (*handler)(void)) {
    u32 address = (u32)handler;
    idt[vector] = (struct gate){(u16)address, 0x08, 0, 0x8e, (u16)(address >> 16)};
}

static void setup_interrupts(void) {
    for (int i = 0; i < 256; i++) set_gate(i, isr_ignore);
    set_gate(0x20, isr_timer);
    set_gate(0x21, isr_keyboard);
    set_gate(0x2f, isr_spurious_slave);
    struct __attribute__((packed)) { u16 limit; u32 base; } idtr = {sizeof idt - 1, (u32)idt};
    __asm__ volatile("lidt %0" : : "m"(idtr));
    /* PICs: vectors 0x20-0x2f, cascade on IRQ 2; only the timer and the keyboard unmasked. */
    outb(0x20, 0x11); outb(0xa0, 0x11);
    outb(0x21, 0x20); outb(0xa1, 0x28);
    outb(0x21, 0x04); outb(0xa1, 0x02);
    outb(0x21, 0x01); outb(0xa1, 0x01);
    outb(0x21, 0xfc); outb(0xa1, 0xff);
    /* PIT channel 0, rate generator, 1193182 Hz / 4773 = 250 Hz: few wake-ups when idle */
    outb(0x43, 0x34); outb(0x40, PIT_DIVISOR & 0xff); outb(0x40, PIT_DIVISOR >> 8);
    while (inb(0x64) & 1) inb(0x60);  /* whatever the BIOS left unread */
    __asm__ volatile("sti");
}

u32 plat_millis(void) { return millis; }

void plat_wait(u32 until_ms, int spin) {
    /* The vmmouse raises no interrupt of its own here: each timer tick looks at its queue. */
    for (;;) {
        __asm__ volatile("cli");
        if (key_head != key_tail || (s32)(millis - until_ms) >= 0 || pointer_pending()) break;
        if (spin)
            __asm__ volatile("sti; pause");  /* as Windows 98 idles: no hlt, the CPU never rests */
        else
            __asm__ volatile("sti; hlt");  /* sti takes effect after hlt starts: no wake-up is lost */
    }
    __asm__ volatile("sti");
}

int plat_key(u8 *scancode) {
    if (key_head == key_tail) return 0;
    *scancode = keys[key_tail++];
    return 1;
}

/* -- screen ------------------------------------------------------------------------------------ */

static volatile u8 *framebuffer;

static u32 pci_read(u32 device, u32 offset) {
    outl(0xcf8, 0x80000000u | device << 11 | offset);
    return inl(0xcfc);
}

static void find_framebuffer(void) {
    for (u32 device = 0; device < 32; device++)
        if (pci_read(device, 0) == 0x11111234u) {  /* QEMU's std VGA (Bochs VBE) */
            framebuffer = (volatile u8 *)(pci_read(device, 0x10) & ~0xfu);
            return;
        }
    framebuffer = (volatile u8 *)0xfd000000u;  /* where QEMU's pc machine puts it */
}

static void vbe(u16 index, u16 value) { outw(0x1ce, index); outw(0x1cf, value); }

int plat_fixed_size(u16 *width, u16 *height) { (void)width, (void)height; return 0; }

int plat_set_mode(u16 width, u16 height, u16 bpp, struct screen *out) {
    vbe(4, 0);  /* disable, set, enable with the linear frame buffer */
    vbe(1, width);
    vbe(2, height);
    vbe(3, bpp);
    vbe(4, 0x41);
    *out = (struct screen){framebuffer, (u32)width * (bpp / 8), width, height, bpp};
    return 0;
}

void plat_set_palette(const u8 (*rgb)[3], int count) {
    outb(0x3c8, 0);
    for (int i = 0; i < count; i++)
        for (int c = 0; c < 3; c++) outb(0x3c9, rgb[i][c] >> 2);  /* the DAC takes 6 bits */
}

void plat_init(void) {
    for (u8 *p = _bss_start; p < _bss_end; p++) *p = 0;
    find_framebuffer();
    setup_interrupts();
    pointer_setup();
}

void demo_main(void) {
    plat_init();
    if (_image_end.magic == CONFIG_MAGIC && _image_end.version == CONFIG_VERSION) demo_run(&_image_end);
}
