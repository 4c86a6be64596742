/* font.h: the report's embedded 5 x 8 bitmap font (printable ASCII), drawn for dualkd
 * in tools/font/font5x8.txt; report/font_glyphs.inc is generated from that drawing. */
#ifndef DK_REPORT_FONT_H
#define DK_REPORT_FONT_H

#include <stdint.h>

#define DK_FONT_W       5 /* columns of ink */
#define DK_FONT_H       8 /* rows: 0-6 above and on the baseline, 7 the descender */
#define DK_FONT_ADVANCE 6 /* columns from one character to the next */

/* The rows of character c, bit 4 = leftmost column; '?' for anything outside ' '..'~'.
 * Static storage. */
const uint8_t *dk_font_glyph(int c);

#endif
