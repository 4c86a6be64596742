/* canvas.c: drawing into an RGB buffer (canvas.h) and the PNG file, written through
 * libpng's simplified API onto a stdio stream we can fsync. */
#include "report/canvas.h"

#include <errno.h>
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "report/font.h"

dk_status dk_canvas_init(dk_canvas *c, int width, int height, dk_rgb background, dk_err *err)
{
    c->rgb = NULL;
    c->width = c->height = 0;
    if (width < 1 || height < 1 || width > DK_CANVAS_MAX_SIDE || height > DK_CANVAS_MAX_SIDE)
        return dk_err_set(err, DK_ELIMIT, "canvas: %d x %d pixels (expected 1..%d a side)", width,
                          height, DK_CANVAS_MAX_SIDE);
    c->rgb = malloc((size_t)width * height * 3);
    if (!c->rgb)
        return dk_err_set(err, DK_ENOMEM, "canvas: no memory for %d x %d pixels", width, height);
    c->width = width;
    c->height = height;
    dk_canvas_fill(c, 0, 0, width, height, background);
    return DK_OK;
}

void dk_canvas_free(dk_canvas *c)
{
    free(c->rgb);
    c->rgb = NULL;
    c->width = c->height = 0;
}

static inline void put(dk_canvas *c, int x, int y, dk_rgb colour)
{
    if (x < 0 || y < 0 || x >= c->width || y >= c->height) return;
    uint8_t *px = c->rgb + ((size_t)y * c->width + x) * 3;
    px[0] = colour.r;
    px[1] = colour.g;
    px[2] = colour.b;
}

void dk_canvas_fill(dk_canvas *c, int x, int y, int w, int h, dk_rgb colour)
{
    for (int j = y < 0 ? 0 : y; j < y + h && j < c->height; j++)
        for (int i = x < 0 ? 0 : x; i < x + w && i < c->width; i++)
            put(c, i, j, colour);
}

/* Bresenham over the longer axis, each step a thickness x thickness block. */
void dk_canvas_line(dk_canvas *c, int x0, int y0, int x1, int y1, int thickness, int dash,
                    dk_rgb colour)
{
    int dx = abs(x1 - x0), dy = -abs(y1 - y0);
    int sx = x0 < x1 ? 1 : -1, sy = y0 < y1 ? 1 : -1;
    int e = dx + dy, half = thickness / 2;
    for (long step = 0;; step++) {
        if (dash <= 0 || (step / dash) % 2 == 0)
            dk_canvas_fill(c, x0 - half, y0 - half, thickness, thickness, colour);
        if (x0 == x1 && y0 == y1) break;
        int e2 = 2 * e;
        if (e2 >= dy) e += dy, x0 += sx;
        if (e2 <= dx) e += dx, y0 += sy;
    }
}

void dk_canvas_blit(dk_canvas *c, int x, int y, const uint8_t *rgb, int w, int h)
{
    for (int j = 0; j < h; j++)
        for (int i = 0; i < w; i++) {
            const uint8_t *p = rgb + ((size_t)j * w + i) * 3;
            put(c, x + i, y + j, (dk_rgb){p[0], p[1], p[2]});
        }
}

int dk_canvas_text_width(const char *text, int scale)
{
    size_t n = strlen(text);
    return n ? (int)(n * DK_FONT_ADVANCE - 1) * scale : 0;
}

int dk_canvas_text_height(int scale)
{
    return DK_FONT_H * scale;
}

/* up = 0: left to right; up = 1: bottom to top, box of height text_width at (x, y). */
static void draw_text(dk_canvas *c, int x, int y, const char *text, int scale, dk_rgb colour,
                      int up)
{
    int length = dk_canvas_text_width(text, scale);
    for (int k = 0; text[k]; k++) {
        const uint8_t *g = dk_font_glyph((unsigned char)text[k]);
        for (int row = 0; row < DK_FONT_H; row++)
            for (int col = 0; col < DK_FONT_W; col++) {
                if (!(g[row] & (1 << (DK_FONT_W - 1 - col)))) continue;
                int along = k * DK_FONT_ADVANCE + col;
                int px = up ? x + row * scale : x + along * scale;
                int py = up ? y + length - (along + 1) * scale : y + row * scale;
                dk_canvas_fill(c, px, py, scale, scale, colour);
            }
    }
}

void dk_canvas_text(dk_canvas *c, int x, int y, const char *text, int scale, dk_rgb colour)
{
    draw_text(c, x, y, text, scale, colour, 0);
}

void dk_canvas_text_up(dk_canvas *c, int x, int y, const char *text, int scale, dk_rgb colour)
{
    draw_text(c, x, y, text, scale, colour, 1);
}

dk_status dk_canvas_write_png(const dk_canvas *c, const char *path, dk_err *err)
{
    FILE *f = fopen(path, "wb");
    if (!f) return dk_err_set(err, DK_EIO, "'%s': %s", path, strerror(errno));
    png_image image;
    memset(&image, 0, sizeof image);
    image.version = PNG_IMAGE_VERSION;
    image.width = (png_uint_32)c->width;
    image.height = (png_uint_32)c->height;
    image.format = PNG_FORMAT_RGB;
    dk_status st = DK_OK;
    if (!png_image_write_to_stdio(&image, f, 0, c->rgb, c->width * 3, NULL))
        st = dk_err_set(err, DK_EIO, "'%s': %s", path, image.message);
    else if (fflush(f) != 0 || fsync(fileno(f)) != 0)
        st = dk_err_set(err, DK_EIO, "'%s': %s", path, strerror(errno));
    png_image_free(&image);
    if (fclose(f) != 0 && !st) st = dk_err_set(err, DK_EIO, "'%s': %s", path, strerror(errno));
    return st;
}
