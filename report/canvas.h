/* canvas.h: an RGB picture in memory for the report's charts and panels: rectangles,
 * lines, text in the embedded bitmap font (font.h), and writing it as a PNG file.
 * Drawing clips to the canvas; nothing here allocates after dk_canvas_init. */
#ifndef DK_REPORT_CANVAS_H
#define DK_REPORT_CANVAS_H

#include <stdint.h>

#include "distill/err.h"

#define DK_CANVAS_MAX_SIDE 8192

typedef struct dk_canvas {
    int width, height;
    uint8_t *rgb; /* owned, width*height*3, rows top to bottom */
} dk_canvas;

typedef struct dk_rgb {
    uint8_t r, g, b;
} dk_rgb;

/* Allocate a width x height canvas filled with background. Release with dk_canvas_free.
 * DK_ELIMIT beyond DK_CANVAS_MAX_SIDE a side, DK_ENOMEM without memory. */
dk_status dk_canvas_init(dk_canvas *c, int width, int height, dk_rgb background, dk_err *err);
void dk_canvas_free(dk_canvas *c);

void dk_canvas_fill(dk_canvas *c, int x, int y, int w, int h, dk_rgb colour);
/* A line from (x0, y0) to (x1, y1), `thickness` pixels wide; dash > 0 draws dash
 * pixels on, dash off along the line. */
void dk_canvas_line(dk_canvas *c, int x0, int y0, int x1, int y1, int thickness, int dash,
                    dk_rgb colour);
/* Copy an RGB picture of w x h pixels with its top-left corner at (x, y). */
void dk_canvas_blit(dk_canvas *c, int x, int y, const uint8_t *rgb, int w, int h);

/* Text with its top-left corner at (x, y), each font pixel a scale x scale block;
 * '\n' is not special. Width and height in pixels of what dk_canvas_text draws. */
void dk_canvas_text(dk_canvas *c, int x, int y, const char *text, int scale, dk_rgb colour);
int dk_canvas_text_width(const char *text, int scale);
int dk_canvas_text_height(int scale);
/* Text rotated a quarter turn anticlockwise (reads bottom to top), its bounding box's
 * top-left corner at (x, y): for a y-axis title. */
void dk_canvas_text_up(dk_canvas *c, int x, int y, const char *text, int scale, dk_rgb colour);

/* Write the canvas as an 8-bit RGB PNG at path (created or truncated, then fsync'ed;
 * renaming it into place is the caller's). */
dk_status dk_canvas_write_png(const dk_canvas *c, const char *path, dk_err *err);

#endif
