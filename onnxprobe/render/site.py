"""Static HTML pages, the one writer of the atlas's site and the demo's index: plain HTML with
inline CSS, no script, no network. Every name shown goes through `escape`; every link through
`href` (relative to the page, percent-encoded)."""

from __future__ import annotations

import html
import posixpath
from urllib.parse import quote

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:1.5em;background:#16181c;color:#ddd}
a{color:#8cf}h1{font-size:1.4em}h2{font-size:1.1em;margin-top:1.6em}
table{border-collapse:collapse}td,th{padding:.25em .7em;border-bottom:1px solid #333;text-align:left}
td.num{text-align:right;font-variant-numeric:tabular-nums}
.grid{display:flex;flex-wrap:wrap;gap:8px}
.card{background:#202329;padding:4px;text-align:center;font-size:.8em}
.card img{display:block;width:96px;height:96px;object-fit:contain;image-rendering:pixelated;margin-bottom:2px}
.views figure{display:inline-block;margin:0 1em 1em 0;vertical-align:top}
.views img{image-rendering:pixelated;max-width:420px;min-width:160px;background:#000}
.bar{background:#5a5;height:.7em}
figcaption{font-size:.85em;color:#aaa}.nav{margin-bottom:1em}.muted{color:#888}
"""


def escape(value) -> str:
    return html.escape(str(value), quote=True)


def href(from_page: str, target: str) -> str:
    """A relative, percent-encoded link from one file of a site to another (both relative to its root)."""
    rel = posixpath.relpath(target, posixpath.dirname(from_page) or ".")
    return escape(quote(rel, safe="/"))


def page(title: str, body: str) -> str:
    """A whole page: `body` is HTML already escaped."""
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{escape(title)}</title><style>{CSS}</style></head>\n<body>\n{body}\n</body></html>\n")


def figure(from_page: str, image: str, caption: str, link: bool = False) -> str:
    """An image of the site with its caption (linked to itself with `link`: a large grid opens whole)."""
    src = href(from_page, image)
    img = f'<img src="{src}" alt="{escape(caption)}">'
    if link:
        img = f'<a href="{src}">{img}</a>'
    return f"<figure>{img}<figcaption>{escape(caption)}</figcaption></figure>"
