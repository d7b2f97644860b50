"""Write wacse_cli/language_scripts.tsv: the scripts each language is written in, from Unicode CLDR.

Source: CLDR's likely subtags (as shipped in Babel's locale data). The first script of a row is
the one CLDR gives the bare language code (``kk`` -> ``kk_Cyrl_KZ``); the others come from the
entries that name a script for that language (``az_Arab``, ``und_Cyrl`` -> ``ru``, ...).
Run it again (``pip install babel``, then ``python tools/make_language_scripts.py``) when CLDR moves.
"""
from __future__ import annotations

import sys
from pathlib import Path

from babel import __version__ as babel_version
from babel.core import get_global

OUT = Path(__file__).resolve().parents[1] / "wacse_cli" / "language_scripts.tsv"


def main() -> None:
    likely = get_global("likely_subtags")
    scripts: dict[str, list[str]] = {}

    def add(lang: str, script: str, first: bool = False) -> None:
        if lang == "und" or len(script) != 4:
            return
        known = scripts.setdefault(lang, [])
        if script in known:
            return
        known.insert(0, script) if first else known.append(script)

    for key, value in likely.items():
        parts = value.split("_")
        if len(parts) >= 2:
            add(parts[0], parts[1], first="_" not in key)
        key_parts = key.split("_")
        if len(key_parts) == 2 and len(key_parts[1]) == 4:
            add(key_parts[0], key_parts[1])
    rows = [f"# language code (CLDR), scripts (ISO 15924, the usual one first). Source: Unicode CLDR likely "
            f"subtags via Babel {babel_version}; made by tools/make_language_scripts.py"]
    rows += [f"{lang}\t{','.join(found)}" for lang, found in sorted(scripts.items())]
    OUT.write_text("\n".join(rows) + "\n", encoding="utf-8")
    print(f"{OUT}: {len(rows) - 1} languages", file=sys.stderr)


if __name__ == "__main__":
    main()
