#!/usr/bin/env python3
"""gen_font.py: tools/font/font5x8.txt -> report/font_glyphs.inc (the glyph table
report/font.c includes). Run from the source root after editing the drawing:
    /usr/bin/python3 tools/font/gen_font.py > report/font_glyphs.inc
Each glyph is 8 bytes, one per row, bit 4 the leftmost column."""
import sys

def main():
    glyphs, current = {}, None
    for line in open("tools/font/font5x8.txt", encoding="ascii"):
        line = line.rstrip("\n")
        if not line or line.startswith("# "):  # glyph rows never hold a space
            continue
        if line.startswith("= "):
            name = line[2:]
            current = " " if name == "space" else name
            if len(current) != 1 or current in glyphs:
                sys.exit(f"gen_font: bad or repeated glyph name {name!r}")
            glyphs[current] = []
            continue
        if len(line) != 5 or set(line) - {"#", "."}:
            sys.exit(f"gen_font: glyph {current!r}: bad row {line!r}")
        glyphs[current].append(sum(1 << (4 - i) for i, ch in enumerate(line) if ch == "#"))
    for code in range(32, 127):
        rows = glyphs.get(chr(code))
        if rows is None or len(rows) != 8:
            sys.exit(f"gen_font: glyph {chr(code)!r} missing or not 8 rows")
        escaped = "\\\\" if chr(code) == "\\" else chr(code)
        comment = f"'{escaped}'" if chr(code) not in "*/" else f"0x{code:02x}"
        print("{" + ", ".join(f"0x{r:02x}" for r in rows) + "}, /* " + comment + " */")

main()
