/* The demo guest's program as a Linux (i386) process, `loco-screen CONFIG`: the screen of the test
 * guest (loco_lan.testguest), which has a network stack besides. No libc: a few system calls.
 * Screen: the framebuffer /dev/fb0, in the mode the boot gave it (the program uses the layout of
 * that size). Keys: the first virtual console in raw mode, which hands over the keyboard's set-1
 * scancodes as they come (the same bytes the bare-metal build reads from the i8042). Pointer and
 * sound: the same ports as bare.c (QEMU's vmmouse backdoor, the PC speaker), made reachable to
 * this root process with ioperm. */
#include "demo.h"

#define SYS_exit 1
#define SYS_read 3
#define SYS_write 4
#define SYS_open 5
#define SYS_ioctl 54
#define SYS_ioperm 101
#define SYS_poll 168
#define SYS_mmap 90
#define SYS_clock_gettime 265

static long syscall3(long n, long a, long b, long c) {
    long r;
    __asm__ volatile("int $0x80" : "=a"(r) : "a"(n), "b"(a), "c"(b), "d"(c) : "memory");
    return r;
}

static void say(const char *text) {
    long n = 0;
    while (text[n]) n++;
    syscall3(SYS_write, 2, (long)text, n);
}

static void die(const char *why) {
    say("loco-screen: ");
    say(why);
    say("\n");
    syscall3(SYS_exit, 1, 0, 0);
    for (;;) {}
}

/* -- screen: /dev/fb0 as the boot left it ------------------------------------------------------ */

#define FBIOGET_VSCREENINFO 0x4600
#define FBIOGET_FSCREENINFO 0x4602
struct fb_bitfield { u32 offset, length, msb_right; };
struct fb_var_screeninfo {
    u32 xres, yres, xres_virtual, yres_virtual, xoffset, yoffset, bits_per_pixel, grayscale;
    struct fb_bitfield red, green, blue, transp;
    u32 nonstd, activate, height, width, accel_flags, pixclock, left_margin, right_margin, upper_margin,
        lower_margin, hsync_len, vsync_len, sync, vmode, rotate, colorspace, reserved[4];
};
struct fb_fix_screeninfo {
    char id[16];
    u32 smem_start, smem_len, type, type_aux, visual;
    u16 xpanstep, ypanstep, ywrapstep;
    u32 line_length, mmio_start, mmio_len, accel;
    u16 capabilities, reserved[2];
};

static struct screen fixed;

int plat_fixed_size(u16 *width, u16 *height) {
    *width = fixed.width;
    *height = fixed.height;
    return 1;
}

int plat_set_mode(u16 width, u16 height, u16 bpp, struct screen *out) {
    (void)width, (void)height, (void)bpp;  /* the mode is the boot's */
    *out = fixed;
    return 0;
}

void plat_set_palette(const u8 (*rgb)[3], int count) { (void)rgb, (void)count; }

static void open_screen(void) {
    int fd = syscall3(SYS_open, (long)"/dev/fb0", 2 /* O_RDWR */, 0);
    struct fb_var_screeninfo var;
    struct fb_fix_screeninfo fix;
    if (fd < 0) die("cannot open /dev/fb0");
    if (syscall3(SYS_ioctl, fd, FBIOGET_VSCREENINFO, (long)&var) < 0 ||
        syscall3(SYS_ioctl, fd, FBIOGET_FSCREENINFO, (long)&fix) < 0)
        die("/dev/fb0 does not describe itself");
    if (var.bits_per_pixel != 16 && var.bits_per_pixel != 32) die("the framebuffer is neither 16 nor 32 bits");
    long mapping[6] = {0, (long)fix.smem_len, 3 /* read|write */, 1 /* shared */, fd, 0};  /* old_mmap's */
    long base = syscall3(SYS_mmap, (long)mapping, 0, 0);
    if (base < 0 && base > -4096) die("cannot map /dev/fb0");
    fixed = (struct screen){(volatile u8 *)base, fix.line_length, (u16)var.xres, (u16)var.yres,
                            (u16)var.bits_per_pixel};
}

/* -- keys: the console's raw scancodes ------------------------------------------------------- */

#define KDSETMODE 0x4B3A
#define KD_GRAPHICS 1
#define KDSKBMODE 0x4B45
#define K_RAW 0
#define TCGETS 0x5401
#define TCSETS 0x5402
struct termios { u32 c_iflag, c_oflag, c_cflag, c_lflag; u8 c_line, c_cc[19]; };

static int console;
static u8 pending[64];
static int pending_head, pending_count;

static void open_console(void) {
    console = syscall3(SYS_open, (long)"/dev/tty1", 2 | 04000 /* O_RDWR | O_NONBLOCK */, 0);
    if (console < 0) die("cannot open /dev/tty1");
    syscall3(SYS_ioctl, console, KDSETMODE, KD_GRAPHICS);  /* the console stops drawing on the screen */
    syscall3(SYS_ioctl, console, KDSKBMODE, K_RAW);
    struct termios t;
    if (syscall3(SYS_ioctl, console, TCGETS, (long)&t) == 0) {
        t.c_iflag = 0;
        t.c_lflag = 0;  /* no line editing, no echo, no signals: every byte as it comes */
        syscall3(SYS_ioctl, console, TCSETS, (long)&t);
    }
}

int plat_key(u8 *scancode) {
    if (!pending_count) {
        long n = syscall3(SYS_read, console, (long)pending, sizeof pending);
        if (n <= 0) return 0;
        pending_head = 0;
        pending_count = (int)n;
    }
    *scancode = pending[pending_head++];
    pending_count--;
    return 1;
}

/* -- time ------------------------------------------------------------------------------------ */

struct timespec32 { s32 seconds, nanoseconds; };

u32 plat_millis(void) {
    struct timespec32 now;
    syscall3(SYS_clock_gettime, 1 /* CLOCK_MONOTONIC */, (long)&now, 0);
    return (u32)now.seconds * 1000u + (u32)now.nanoseconds / 1000000u;
}

struct pollfd { int fd; short events, revents; };

void plat_wait(u32 until_ms, int spin) {
    /* The vmmouse raises nothing a process can wait on: its queue is looked at every 8 ms. */
    for (;;) {
        s32 left = (s32)(until_ms - plat_millis());
        if (left <= 0 || pending_count || pointer_pending()) return;
        struct pollfd wanted = {console, 1 /* POLLIN */, 0};
        if (syscall3(SYS_poll, (long)&wanted, 1, spin ? 0 : left < 8 ? left : 8) > 0) return;
    }
}

/* -- start ------------------------------------------------------------------------------------ */

static u8 config_bytes[16384];

void plat_init(void) {}

static void run(int argc, char **argv) {
    const char *path = argc > 1 ? argv[1] : "/etc/loco-screen.cfg";
    int fd = syscall3(SYS_open, (long)path, 0, 0);
    if (fd < 0) die("cannot open its config file");
    long size = syscall3(SYS_read, fd, (long)config_bytes, sizeof config_bytes);
    const struct config *config = (const struct config *)config_bytes;
    if (size < (long)sizeof *config || config->magic != CONFIG_MAGIC || config->version != CONFIG_VERSION)
        die("its config file is not one it understands");
    if (syscall3(SYS_ioperm, 0x42, 2, 1) < 0 || syscall3(SYS_ioperm, 0x61, 1, 1) < 0 ||
        syscall3(SYS_ioperm, 0x5658, 4, 1) < 0)  /* a 32-bit in reads four ports */
        die("cannot reach the I/O ports (it must run as root)");
    open_screen();
    open_console();
    pointer_setup();
    demo_run(config);
}

/* The kernel enters here with argc, argv... on the stack. */
__attribute__((noreturn, used)) static void start(long *stack) {
    run((int)stack[0], (char **)(stack + 1));
    syscall3(SYS_exit, 0, 0, 0);
    for (;;) {}
}

__asm__(".globl _start\n_start:\n  xorl %ebp, %ebp\n  movl %esp, %eax\n  andl $-16, %esp\n"
        "  pushl %eax\n  pushl %eax\n  call start\n");
