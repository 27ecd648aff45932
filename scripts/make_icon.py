"""Render the app's page icon, ``assets/icon.png``, from the Material Symbols font Streamlit ships.

The app used ``page_icon=":material/front_hand:"``, which the browser fetched as an SVG from
fonts.gstatic.com on every page load: the one request that left the machine (issue 15, found by
``tests/test_browser.py``'s request log). The same glyph drawn once into a PNG (white on the
theme's blue) keeps the look and needs no network. Material Symbols: Apache License 2.0, Google.

    python scripts/make_icon.py
"""
from __future__ import annotations

from pathlib import Path

import streamlit
from PIL import Image, ImageDraw, ImageFont

OUT = Path(__file__).resolve().parent.parent / "assets" / "icon.png"
BLUE = (0, 114, 178, 255)  # .streamlit/config.toml primaryColor
SIZE = 128


def main() -> None:
    font_file = next((Path(streamlit.__file__).parent / "static").rglob("MaterialSymbols-Rounded*.woff2"))
    font = ImageFont.truetype(str(font_file), int(SIZE * 0.78))
    im = Image.new("RGBA", (SIZE, SIZE), (0, 0, 0, 0))
    d = ImageDraw.Draw(im)
    d.rounded_rectangle((0, 0, SIZE - 1, SIZE - 1), radius=SIZE // 5, fill=BLUE)
    x0, y0, x1, y1 = d.textbbox((0, 0), "front_hand", font=font, features=["liga"])
    d.text(((SIZE - (x1 - x0)) / 2 - x0, (SIZE - (y1 - y0)) / 2 - y0), "front_hand", font=font,
           fill="white", features=["liga"])
    OUT.parent.mkdir(parents=True, exist_ok=True)
    im.save(OUT, optimize=True)
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
