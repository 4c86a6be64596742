/* font.c: the glyph table of the report's bitmap font (font.h). The table itself is
 * generated (tools/font/gen_font.py); edit the drawing, not the numbers. */
#include "report/font.h"

static const uint8_t glyphs[95][DK_FONT_H] = {
#include "report/font_glyphs.inc"
};

const uint8_t *dk_font_glyph(int c)
{
    if (c < ' ' || c > '~') c = '?';
    return glyphs[c - ' '];
}
