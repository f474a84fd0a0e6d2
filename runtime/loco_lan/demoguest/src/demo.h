/* The demo guest: a stand-in for a Windows 98 desktop that moves, answers keys and clicks at the
 * place clicked, and beeps on demand, so streaming and play can be tested end to end on QEMU.
 * demo.c is the program; a platform file (bare.c: no OS) gives it a screen, time and input.
 * The layout, palette and font come from the config blob that loco_lan.demoguest writes. */
#ifndef DEMO_H
#define DEMO_H
#include <stdint.h>

typedef uint8_t u8;
typedef uint16_t u16;
typedef uint32_t u32;
typedef int32_t s32;

#define CONFIG_MAGIC 0x4f434f4cu /* "LOCO" */
#define CONFIG_VERSION 1
#define MODES 2
#define COLOURS 16

/* Palette indices, in the order of loco_lan.demoguest.PALETTE. */
enum colour { TEAL, FACE, WHITE, BLACK, SHADOW, NAVY, RED, GREEN, BLUE, YELLOW };

enum field_id { F_FRAME, F_MAKES, F_BREAKS, F_LOG, F_MOUSE_X, F_MOUSE_Y, F_BUTTONS, F_WHEEL,
                F_CLICKS, F_TONE, F_BPP, F_COUNT };

struct __attribute__((packed)) mode_layout {
    u16 width, height, bpp;
    u16 win_x, win_y;          /* the demo window's origin: dynamic parts are relative to it */
    u16 rect_first, rect_count;
};
struct __attribute__((packed)) box { u16 x, y, w, h; };
struct __attribute__((packed)) field { u16 x, y; u8 digits, colour; };
struct __attribute__((packed)) rect { u16 x0, y0, x1, y1; u8 colour, pad; };
struct __attribute__((packed)) config {
    u32 magic;
    u16 version, boot_ms, tone_hz, frame_ms;
    u8 palette[COLOURS][3];
    u8 font[16][7];            /* hex digits, 5x7, bit 4 leftmost */
    u8 scale, pad;
    struct mode_layout modes[MODES];
    struct box track, latency;
    struct field fields[F_COUNT];
    u16 rect_total;
    struct rect rects[];
};

struct screen { volatile u8 *fb; u32 pitch; u16 width, height, bpp; };
struct pointer { u16 x, y; u8 buttons; s32 wheel; }; /* x, y: 0..65535 of the screen */

/* What a platform provides. */
void plat_init(void);
int plat_fixed_size(u16 *width, u16 *height);  /* 1: the screen's mode cannot change (Linux fb) */
int plat_set_mode(u16 width, u16 height, u16 bpp, struct screen *out);
void plat_set_palette(const u8 (*rgb)[3], int count);
u32 plat_millis(void);
int plat_key(u8 *scancode);            /* next set-1 scancode byte, if any */
int plat_pointer(struct pointer *now);  /* the next pointer event, if any */
void plat_tone(u16 hz);                 /* 0: silence */
void plat_wait(u32 until_ms, int spin); /* until an input event or that time; spin: never idle */

void demo_run(const struct config *config);

/* ports.c, shared by both platforms: plat_pointer and plat_tone, and these. */
void pointer_setup(void);
int pointer_pending(void);  /* a pointer packet is queued */

static inline void outb(u16 port, u8 v) { __asm__ volatile("outb %0, %1" : : "a"(v), "Nd"(port)); }
static inline u8 inb(u16 port) { u8 v; __asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port)); return v; }
#endif
