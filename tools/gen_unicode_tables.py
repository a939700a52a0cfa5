"""Writes native/src/text/unicode_tables.h: the Unicode general category of every
code point (as ranges), the White_Space code points and the simple lowercase
mapping, from Python's unicodedata, for the C tokenizer's pre-tokenizer
regexes (\\p{L}, \\p{N}, \\p{P}, \\s, (?i:...)); and what the Unicode
normalization forms need (tokenizer.json's NFC / NFKC / NFD / NFKD
normalizers): canonical combining classes (as ranges), each code point's
one-level decomposition (canonical or compatibility) into a shared pool, and
the primary composites by their pair. Hangul syllables are left out: C
composes and decomposes them algorithmically.

The Python tokenizer matches with the `regex` module, whose Unicode version
is often newer than unicodedata's: where the two disagree on a code point's
letter/number/punctuation class, the category `regex` gives wins, so the C
tokenizer splits text exactly as the Python one does.

    python tools/gen_unicode_tables.py            # rewrites the header
    python tools/gen_unicode_tables.py --check    # exits 1 if it is stale
"""

from __future__ import annotations

import sys
import unicodedata
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "native" / "src" / "text" / "unicode_tables.h"
CATS = ["Cn", "Lu", "Ll", "Lt", "Lm", "Lo", "Mn", "Mc", "Me", "Nd", "Nl", "No", "Pc", "Pd", "Ps", "Pe", "Pi", "Pf",
        "Po", "Sm", "Sc", "Sk", "So", "Zs", "Zl", "Zp", "Cc", "Cf", "Cs", "Co"]
MAX = 0x110000


def tables():
    import regex

    cats = [CATS.index(unicodedata.category(chr(c))) for c in range(MAX)]
    major = {m: regex.compile(r"\p{" + m + "}") for m in "LNP"}
    exact = {k: regex.compile(r"\p{" + k + "}") for k in CATS}
    fixed = 0
    for m in "LNP":
        for c in range(MAX):
            if bool(major[m].fullmatch(chr(c))) != CATS[cats[c]].startswith(m):
                cats[c] = next((i for i, k in enumerate(CATS) if exact[k].fullmatch(chr(c))), 0)
                fixed += 1
    ranges, start = [], 0
    for c in range(1, MAX + 1):
        if c == MAX or cats[c] != cats[start]:
            if cats[start] != 0:
                ranges.append((start, c - 1, cats[start]))
            start = c
    space = [c for c in range(MAX) if regex.fullmatch(r"\s", chr(c))]
    lower = [(c, ord(chr(c).lower())) for c in range(MAX)
             if len(chr(c).lower()) == 1 and chr(c).lower() != chr(c)]
    return ranges, space, lower, fixed


def normalization_tables():
    """(ccc ranges [(lo, n, ccc)], decompositions [(cp, compat, pool offset, length)], pool,
    composites [(first, second, composite)] sorted by the pair)."""
    ccc, prev = [], None
    for c in range(MAX):
        k = unicodedata.combining(chr(c))
        if k and prev is not None and prev[0] + prev[1] == c and prev[2] == k and prev[1] < 0xFFFF:
            prev[1] += 1
        elif k:
            prev = [c, 1, k]
            ccc.append(prev)
    decomp, pool, at = [], [], {}
    for c in range(MAX):
        d = unicodedata.decomposition(chr(c))
        if not d or 0xAC00 <= c <= 0xD7A3:
            continue
        parts = tuple(int(x, 16) for x in d.split() if not x.startswith("<"))
        if parts not in at:  # equal mappings share their pool entry
            at[parts] = len(pool)
            pool += parts
        decomp.append((c, int(d.startswith("<")), at[parts], len(parts)))
    comp = sorted((int(a, 16), int(b, 16), c) for c in range(MAX)
                  if not (0xAC00 <= c <= 0xD7A3) and len(d := unicodedata.decomposition(chr(c)).split()) == 2
                  and not d[0].startswith("<") and unicodedata.normalize("NFC", chr(c)) == chr(c)
                  for a, b in [d])
    assert len(pool) < 1 << 16
    return [tuple(x) for x in ccc], decomp, pool, comp


def render_normalization(ccc, decomp, pool, comp) -> list[str]:
    lines = ["", "/* canonical combining classes: {first code point, how many, class}; the rest are 0 */",
             "typedef struct { uint32_t lo; uint16_t n; uint8_t ccc; } plm_uc_ccc_range;",
             f"static const plm_uc_ccc_range plm_uc_ccc_ranges[{len(ccc)}] = {{"]
    for i in range(0, len(ccc), 5):
        lines.append("    " + " ".join(f"{{0x{lo:X}, {n}, {k}}}," for lo, n, k in ccc[i:i + 5]))
    lines += ["};", "", "/* one-level decompositions (Hangul syllables excepted): {code point, compatibility (1) or",
              " * canonical (0), offset into plm_uc_decomp_pool, length} */",
              "typedef struct { uint32_t cp; uint8_t compat, len; uint16_t off; } plm_uc_decomp_entry;",
              f"static const plm_uc_decomp_entry plm_uc_decomp[{len(decomp)}] = {{"]
    for i in range(0, len(decomp), 5):
        lines.append("    " + " ".join(f"{{0x{c:X}, {k}, {n}, {o}}}," for c, k, o, n in decomp[i:i + 5]))
    lines += ["};", f"static const uint32_t plm_uc_decomp_pool[{len(pool)}] = {{"]
    for i in range(0, len(pool), 10):
        lines.append("    " + " ".join(f"0x{c:X}," for c in pool[i:i + 10]))
    lines += ["};", "", "/* primary composites (canonical pairs not excluded from composition): {first, second,",
              " * composite}, sorted by the pair */",
              f"static const uint32_t plm_uc_comp[{len(comp)}][3] = {{"]
    for i in range(0, len(comp), 5):
        lines.append("    " + " ".join(f"{{0x{a:X}, 0x{b:X}, 0x{c:X}}}," for a, b, c in comp[i:i + 5]))
    lines.append("};")
    return lines


def render(ranges, space, lower, norm) -> str:
    lines = [
        "/* Generated by tools/gen_unicode_tables.py from Python's unicodedata",
        f" * (Unicode {unicodedata.unidata_version}) and the regex module; do not edit. */",
        "#ifndef PLM_UNICODE_TABLES_H", "#define PLM_UNICODE_TABLES_H", "", "#include <stdint.h>", "",
        "/* general categories, in this order; code points in no range are Cn */",
        "static const char plm_uc_cat_names[][3] = {" + ", ".join(f'"{c}"' for c in CATS) + "};",
        "", "typedef struct { uint32_t lo, hi; uint8_t cat; } plm_uc_range;", "",
        f"static const plm_uc_range plm_uc_ranges[{len(ranges)}] = {{",
    ]
    for i in range(0, len(ranges), 4):
        lines.append("    " + " ".join(f"{{0x{lo:X}, 0x{hi:X}, {k}}}," for lo, hi, k in ranges[i:i + 4]))
    lines += ["};", "", "/* what the regex module's \\s matches (Unicode White_Space) */",
              f"static const uint32_t plm_uc_space[{len(space)}] = {{"]
    for i in range(0, len(space), 10):
        lines.append("    " + " ".join(f"0x{c:X}," for c in space[i:i + 10]))
    lines += ["};", "", "/* simple lowercase mapping: {code point, its lowercase} */",
              f"static const uint32_t plm_uc_lower_map[{len(lower)}][2] = {{"]
    for i in range(0, len(lower), 6):
        lines.append("    " + " ".join(f"{{0x{a:X}, 0x{b:X}}}," for a, b in lower[i:i + 6]))
    lines += ["};"] + render_normalization(*norm) + ["", "#endif", ""]
    return "\n".join(lines)


def main() -> int:
    ranges, space, lower, fixed = tables()
    norm = normalization_tables()
    text = render(ranges, space, lower, norm)
    if "--check" in sys.argv:
        ok = OUT.is_file() and OUT.read_text() == text
        print(f"{OUT}: {'up to date' if ok else 'stale'}")
        return 0 if ok else 1
    OUT.write_text(text)
    print(f"wrote {OUT}: {len(ranges)} ranges, {len(space)} spaces, {len(lower)} case pairs, {len(norm[0])} "
          f"combining-class ranges, {len(norm[1])} decompositions, {len(norm[3])} composites; {fixed} code "
          f"points take regex's category (unicodedata has Unicode {unicodedata.unidata_version})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
