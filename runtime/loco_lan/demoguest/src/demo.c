/* The demo guest's program: see demo.h. Keys it reacts to itself (set-1 make codes):
 * F7 keeps the CPU busy (no halting while it waits, as Windows 98 idles) or lets it rest again,
 * F8 pauses/resumes the animation, F9 toggles the tone, F10 full-screen motion, F11 switches
 * between the two resolutions, F12 cycles the colour depth 16 -> 32 -> 8 bits. Every other key
 * is only shown: counted, logged, and it flips the latency square. */
#include "demo.h"

#define KEY_F7 0x41
#define KEY_F8 0x42
#define KEY_F9 0x43
#define KEY_F10 0x44
#define KEY_F11 0x57
#define KEY_F12 0x58
#define CURSOR 5 /* the cursor cross reaches this far from its centre */
#define MARKER 4 /* a click marker's half size */
#define LOG_BYTES 8

static const struct config *cfg;
static struct screen scr;
static const struct mode_layout *layout;
static u32 pixel[COLOURS];
static u32 gradient[64];

static struct {
    u32 frame;
    u16 makes, breaks, clicks;
    u8 log[LOG_BYTES];
    struct pointer pointer;
    u16 px, py; /* the pointer in screen pixels */
    u8 tone, motion, paused, latency, busy;
    u16 square_x;
    s32 square_step;
    u16 bpp_choice[MODES];
    int mode;
} st;

static u32 under_cursor[(2 * CURSOR + 1) * (2 * CURSOR + 1)];
static int cursor_shown;
static u16 cursor_x, cursor_y;

/* -- pixels ------------------------------------------------------------------------------------ */

static u32 encode_rgb(u32 r, u32 g, u32 b, int index) {
    if (scr.bpp == 8) return (u32)index;
    if (scr.bpp == 16) return ((r >> 3) << 11) | ((g >> 2) << 5) | (b >> 3);
    return (r << 16) | (g << 8) | b;
}

static void put(u16 x, u16 y, u32 value) {
    volatile u8 *row = scr.fb + (u32)y * scr.pitch;
    if (scr.bpp == 8) row[x] = (u8)value;
    else if (scr.bpp == 16) ((volatile u16 *)row)[x] = (u16)value;
    else ((volatile u32 *)row)[x] = value;
}

static u32 get(u16 x, u16 y) {
    volatile u8 *row = scr.fb + (u32)y * scr.pitch;
    if (scr.bpp == 8) return row[x];
    if (scr.bpp == 16) return ((volatile u16 *)row)[x];
    return ((volatile u32 *)row)[x];
}

static void fill_value(int x0, int y0, int x1, int y1, u32 value) {
    if (x0 < 0) x0 = 0;
    if (y0 < 0) y0 = 0;
    if (x1 > scr.width) x1 = scr.width;
    if (y1 > scr.height) y1 = scr.height;
    for (int y = y0; y < y1; y++) {
        volatile u8 *row = scr.fb + (u32)y * scr.pitch;
        if (scr.bpp == 8) for (int x = x0; x < x1; x++) row[x] = (u8)value;
        else if (scr.bpp == 16) for (int x = x0; x < x1; x++) ((volatile u16 *)row)[x] = (u16)value;
        else for (int x = x0; x < x1; x++) ((volatile u32 *)row)[x] = value;
    }
}

static void fill(int x0, int y0, int x1, int y1, int colour) { fill_value(x0, y0, x1, y1, pixel[colour]); }

static int fixed_mode = -1;  /* the layout of the one mode a fixed screen has */

static void set_mode(int mode) {
    if (fixed_mode >= 0) mode = fixed_mode;
    layout = &cfg->modes[mode];
    st.mode = mode;
    plat_set_mode(layout->width, layout->height, st.bpp_choice[mode], &scr);
    if (scr.bpp == 8) plat_set_palette(cfg->palette, COLOURS);
    for (int i = 0; i < COLOURS; i++)
        pixel[i] = encode_rgb(cfg->palette[i][0], cfg->palette[i][1], cfg->palette[i][2], i);
    for (int i = 0; i < 64; i++) { /* a hue cycle for full-screen motion; palette colours at 8 bits */
        u32 third = (u32)i * 3 / 64, up = ((u32)i * 3 % 64) * 255 / 63, down = 255 - up;
        u32 r = third == 0 ? down : third == 1 ? 0 : up;
        u32 g = third == 0 ? up : third == 1 ? down : 0;
        u32 b = third == 0 ? 0 : third == 1 ? up : down;
        gradient[i] = encode_rgb(r, g, b, i % COLOURS);
    }
    cursor_shown = 0;
}

/* -- text and fields --------------------------------------------------------------------------- */

static void glyph(int x, int y, int digit, int colour) {
    int s = cfg->scale;
    for (int row = 0; row < 7; row++)
        for (int col = 0; col < 5; col++)
            fill(x + col * s, y + row * s, x + (col + 1) * s, y + (row + 1) * s,
                 (cfg->font[digit][row] >> (4 - col)) & 1 ? colour : FACE);
}

static void hex(enum field_id id, u32 value) {
    const struct field *f = &cfg->fields[id];
    int advance = 6 * cfg->scale;
    for (int i = f->digits - 1; i >= 0; i--, value >>= 4)
        glyph(layout->win_x + f->x + i * advance, layout->win_y + f->y, value & 15, f->colour);
}

static void draw_log(void) {
    const struct field *f = &cfg->fields[F_LOG];
    int advance = 6 * cfg->scale, pair = 2 * advance + 3 * cfg->scale;
    for (int i = 0; i < LOG_BYTES; i++) {
        u8 b = st.log[i];
        int x = layout->win_x + f->x + i * pair, y = layout->win_y + f->y;
        int colour = b == 0 ? f->colour : b & 0x80 ? RED : GREEN;
        glyph(x, y, b >> 4, colour);
        glyph(x + advance, y, b & 15, colour);
    }
}

static void draw_latency(void) {
    const struct box *b = &cfg->latency;
    int x = layout->win_x + b->x, y = layout->win_y + b->y;
    fill(x, y, x + b->w, y + b->h, st.latency ? WHITE : BLACK);
}

static void draw_square(void) {
    const struct box *t = &cfg->track;
    int x = layout->win_x + t->x, y = layout->win_y + t->y;
    fill(x, y, x + t->w, y + t->h, FACE);
    fill(x + st.square_x, y, x + st.square_x + t->h, y + t->h, RED);
}

static void draw_fields(void) {
    hex(F_FRAME, st.frame);
    hex(F_MAKES, st.makes);
    hex(F_BREAKS, st.breaks);
    hex(F_MOUSE_X, st.px);
    hex(F_MOUSE_Y, st.py);
    hex(F_BUTTONS, st.pointer.buttons);
    hex(F_WHEEL, (u32)st.pointer.wheel);
    hex(F_CLICKS, st.clicks);
    hex(F_TONE, st.tone);
    hex(F_BPP, scr.bpp);
    draw_log();
}

/* -- the screen -------------------------------------------------------------------------------- */

static int in_window(int y) {
    const struct rect *frame = &cfg->rects[layout->rect_first];  /* the first rect is the window */
    return y >= frame->y0 && y < frame->y1;
}

static u8 motion_row[(2048 + 1536) * 4];

static void copy_out(volatile u8 *to, const u8 *from, u32 bytes) {
    u32 dwords = bytes / 4;
    __asm__ volatile("rep movsl" : "+D"(to), "+S"(from), "+c"(dwords) : : "memory");
    for (u32 i = 0; i < (bytes & 3); i++) to[i] = from[i];
}

static void draw_motion(void) {
    /* Diagonal bands moving 4 pixels a frame over everything but the demo window: one row of
     * the pattern is made per frame, and screen row y is that row from pixel y on. */
    const struct rect *frame = &cfg->rects[layout->rect_first];
    u32 bytes = scr.bpp / 8, shift = st.frame * 4, length = (u32)scr.width + scr.height;
    for (u32 i = 0; i < length; i++) {
        u32 v = gradient[(i + shift) / 8 % 64];
        if (bytes == 1) motion_row[i] = (u8)v;
        else if (bytes == 2) ((u16 *)motion_row)[i] = (u16)v;
        else ((u32 *)motion_row)[i] = v;
    }
    for (u32 y = 0; y < scr.height; y++) {
        volatile u8 *row = scr.fb + y * scr.pitch;
        const u8 *pattern = motion_row + y * bytes;
        if (in_window(y)) {
            copy_out(row, pattern, frame->x0 * bytes);
            copy_out(row + frame->x1 * bytes, pattern + frame->x1 * bytes, (scr.width - frame->x1) * bytes);
        } else {
            copy_out(row, pattern, scr.width * bytes);
        }
    }
}

static void draw_desktop(void) {
    fill(0, 0, scr.width, scr.height, TEAL);
    const struct rect *r = &cfg->rects[layout->rect_first];
    for (int i = 0; i < layout->rect_count; i++, r++) fill(r->x0, r->y0, r->x1, r->y1, r->colour);
    if (st.motion) draw_motion();
    draw_square();
    draw_latency();
    draw_fields();
}

static void cursor_hide(void) {
    if (!cursor_shown) return;
    int i = 0;
    for (int dy = -CURSOR; dy <= CURSOR; dy++)
        for (int dx = -CURSOR; dx <= CURSOR; dx++, i++) {
            int x = cursor_x + dx, y = cursor_y + dy;
            if (x >= 0 && y >= 0 && x < scr.width && y < scr.height && (dx == 0 || dy == 0 || dx == 1 || dy == 1))
                put(x, y, under_cursor[i]);
        }
    cursor_shown = 0;
}

static void cursor_show(void) {
    if (cursor_shown) return;
    cursor_x = st.px;
    cursor_y = st.py;
    int i = 0;
    for (int dy = -CURSOR; dy <= CURSOR; dy++)
        for (int dx = -CURSOR; dx <= CURSOR; dx++, i++) {
            int x = cursor_x + dx, y = cursor_y + dy;
            if (x < 0 || y < 0 || x >= scr.width || y >= scr.height) continue;
            if (dx == 0 || dy == 0 || dx == 1 || dy == 1) { /* a two-pixel cross: white core, black edge */
                under_cursor[i] = get(x, y);
                put(x, y, pixel[(dx == 0 || dy == 0) ? WHITE : BLACK]);
            }
        }
    cursor_shown = 1;
}

/* -- input ------------------------------------------------------------------------------------- */

static void on_key(u8 code) {
    for (int i = 0; i < LOG_BYTES - 1; i++) st.log[i] = st.log[i + 1];
    st.log[LOG_BYTES - 1] = code;
    if (code == 0xe0 || code == 0xe1) return;  /* prefixes are logged, not counted */
    if (code & 0x80) { st.breaks++; return; }
    st.makes++;
    st.latency ^= 1;
    switch (code) {
    case KEY_F7: st.busy ^= 1; break;
    case KEY_F8: st.paused ^= 1; break;
    case KEY_F9: st.tone ^= 1; plat_tone(st.tone ? cfg->tone_hz : 0); break;
    case KEY_F10: st.motion ^= 1; draw_desktop(); break;
    case KEY_F11:
        if (fixed_mode >= 0) break;
        set_mode(1 - st.mode);
        draw_desktop();
        break;
    case KEY_F12:
        if (fixed_mode >= 0) break;
        st.bpp_choice[st.mode] = st.bpp_choice[st.mode] == 16 ? 32 : st.bpp_choice[st.mode] == 32 ? 8 : 16;
        set_mode(st.mode);
        draw_desktop();
        break;
    }
}

static void on_pointer(const struct pointer *now) {
    u8 pressed = now->buttons & ~st.pointer.buttons;
    st.pointer = *now;
    st.px = (u16)(((u32)now->x * scr.width + 0x8000) >> 16);  /* rounded: QEMU scales down, then doubles */
    st.py = (u16)(((u32)now->y * scr.height + 0x8000) >> 16);
    static const u8 button_bits[3] = {1, 2, 4};
    for (int i = 0; i < 3; i++)
        if (pressed & button_bits[i]) {
            u8 colour = i == 0 ? RED : i == 1 ? BLUE : YELLOW;
            fill(st.px - MARKER, st.py - MARKER, st.px + MARKER + 1, st.py + MARKER + 1, colour);
            st.clicks++;
        }
}

/* -- main loop --------------------------------------------------------------------------------- */

void demo_run(const struct config *config) {
    cfg = config;
    st.bpp_choice[0] = cfg->modes[0].bpp;
    st.bpp_choice[1] = cfg->modes[1].bpp;
    st.square_step = 8;
    u16 width, height;
    if (plat_fixed_size(&width, &height))
        for (int i = MODES - 1; i >= 0; i--)
            if (fixed_mode < 0 || (cfg->modes[i].width == width && cfg->modes[i].height == height)) fixed_mode = i;
    set_mode(0);
    draw_desktop();
    u32 now = plat_millis(), main_at = now + cfg->boot_ms, next_frame = now + cfg->frame_ms;
    int booting = 1;
    for (;;) {
        plat_wait(booting && main_at < next_frame ? main_at : next_frame, st.busy);
        now = plat_millis();
        int drawn = 0;
        u8 code;
        struct pointer p;
        while (plat_key(&code)) {
            cursor_hide();
            on_key(code);
            drawn = 1;
        }
        while (plat_pointer(&p)) {  /* one packet at a time: a quick click keeps its press */
            cursor_hide();
            on_pointer(&p);
            drawn = 1;
        }
        if (booting && now >= main_at) {
            booting = 0;
            set_mode(1);
            draw_desktop();
        }
        if (now >= next_frame) {
            next_frame = now + cfg->frame_ms;
            if (!st.paused) {
                cursor_hide();
                st.frame++;
                s32 limit = cfg->track.w - cfg->track.h;
                s32 x = (s32)st.square_x + st.square_step;
                if (x < 0 || x > limit) st.square_step = -st.square_step, x = (s32)st.square_x + st.square_step;
                st.square_x = (u16)x;
                if (st.motion) draw_motion();
                draw_square();
                drawn = 1;
            }
        }
        if (drawn) {
            draw_latency();
            draw_fields();
            cursor_show();
        }
    }
}
