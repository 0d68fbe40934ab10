"""HTML building blocks of the report: trusted markup, escaping, tables, figures, images and the page.

Every string that comes from data (model ids, class names, finding lines) goes through :func:`esc`
or is passed as a plain ``str`` to a helper here, which escapes it; only :class:`Html` values (markup
that these helpers built) are inserted as they are. The page loads nothing: styles and the few lines
of script that sort tables are inline, figures are inline SVG and images are ``data:`` URIs.
"""

from __future__ import annotations

import base64
import html
import io
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["Html", "Section", "esc", "join", "tag", "code_list", "fact", "table", "Column", "png_img", "render_page"]


_VOID = frozenset({"img", "meta", "br", "hr"})


class Html(str):
    """Markup built by this module: inserted into the page without escaping."""


def esc(value: Any) -> Html:
    """``value`` as text (escaped), unless it is already :class:`Html`."""
    return value if isinstance(value, Html) else Html(html.escape(str(value), quote=True))


def join(parts: Iterable[Any], sep: str = "") -> Html:
    """Concatenate parts, escaping the ones that are not :class:`Html`."""
    return Html(sep.join(esc(p) for p in parts))


def tag(name: str, *children: Any, **attrs: Any) -> Html:
    """``<name attrs>children</name>``; attribute values and plain-text children are escaped.

    ``class_`` stands for ``class``; a ``None`` attribute is left out.
    """
    attr = "".join(f' {k.rstrip("_").replace("_", "-")}="{esc(v)}"' for k, v in attrs.items() if v is not None)
    if name in _VOID:
        return Html(f"<{name}{attr}>")
    return Html(f"<{name}{attr}>{join(children)}</{name}>")


def code_list(paths: Iterable[str]) -> Html:
    return join((tag("code", p) for p in paths), ", ")


def fact(value: Any, label: str) -> Html:
    """One fact box: ``value`` large, ``label`` under it (a row of them goes in ``<div class="facts">``)."""
    return tag("div", tag("b", value), tag("span", label), class_="fact")


@dataclass(frozen=True)
class Section:
    """One section of the report.

    Attributes:
        id: the anchor (letters, digits, ``-``); title: the heading.
        sources: the artifacts its numbers come from (shown under the heading, so every number is traceable).
        body: its content, built with this module's helpers.
        intro: one plain-text sentence under the heading (escaped).
    """

    id: str
    title: str
    sources: tuple[str, ...]
    body: Html
    intro: str = ""


@dataclass(frozen=True)
class Column:
    """A table column: ``key`` of the row dicts, header text, a formatter of the value (plain text or
    :class:`Html`), and whether it is numeric (right-aligned, sorted by value)."""

    key: str
    header: str
    fmt: Callable[[Any], Any] = str
    numeric: bool = False
    title: str | None = None


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def table(rows: Sequence[dict[str, Any]], columns: Sequence[Column], *, sortable: bool = False,
          caption: str | None = None) -> Html:
    """A table of ``rows``; with ``sortable``, clicking a header sorts by that column (numbers by value)."""
    head = join(tag("th", c.header, class_="num" if c.numeric else None, title=c.title) for c in columns)
    body = []
    for row in rows:
        cells = []
        for c in columns:
            value = row.get(c.key)
            text = "–" if _missing(value) else c.fmt(value)
            sort_key = value if sortable and c.numeric and not _missing(value) else None
            cells.append(tag("td", text, class_="num" if c.numeric else None, data_v=sort_key))
        body.append(tag("tr", join(cells)))
    return tag("table", tag("caption", caption) if caption else Html(""), tag("thead", tag("tr", head)),
               tag("tbody", join(body)), class_="sortable" if sortable else None)


def png_img(image: Any, *, alt: str, title: str | None = None, width: int | None = None) -> Html:
    """A PIL image embedded as a base64 PNG ``<img>``."""
    buf = io.BytesIO()
    image.save(buf, format="PNG", optimize=False)
    src = "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")
    return tag("img", src=src, alt=alt, title=title, width=width)


_CSS = """
:root{--fg:#1d232a;--muted:#5b6673;--line:#d9dee4;--bg:#fff;--soft:#f4f6f8;--accent:#2763a8}
*{box-sizing:border-box}
body{margin:0;font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;color:var(--fg);background:var(--soft)}
header{background:#1f3b57;color:#fff;padding:18px 28px}
header h1{margin:0;font-size:22px;font-weight:600}
header p{margin:4px 0 0;color:#c8d6e5;font-size:13px}
p.headline{font-size:17px;line-height:1.45;margin:6px 0 12px;max-width:980px}
footer.provenance{padding:14px 28px 28px;color:var(--muted);font-size:12px;border-top:1px solid var(--line)}
nav{background:#fff;border-bottom:1px solid var(--line);padding:8px 28px;font-size:13px;position:sticky;top:0;z-index:2}
nav a{color:var(--accent);text-decoration:none;margin-right:14px;white-space:nowrap;display:inline-block}
main{max-width:1180px;margin:0 auto;padding:12px 20px 40px}
section{background:var(--bg);border:1px solid var(--line);border-radius:6px;padding:14px 20px 18px;margin:16px 0}
h2{font-size:18px;margin:0 0 2px}
h3{font-size:15px;margin:14px 0 4px}
.src{color:var(--muted);font-size:12px;margin:0 0 8px}
.intro{margin:4px 0 10px}
code{font:12px/1.4 ui-monospace,"DejaVu Sans Mono",monospace;background:var(--soft);padding:1px 4px;border-radius:3px}
table{border-collapse:collapse;font-size:13px;margin:6px 0 10px;width:100%}
caption{text-align:left;font-weight:600;padding:4px 0}
th,td{padding:3px 8px;border-bottom:1px solid var(--line);text-align:left;white-space:nowrap}
th{background:var(--soft);font-weight:600}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
table.sortable th{cursor:pointer;user-select:none}
table.sortable th:hover{background:#e6ebf0}
th.asc::after{content:" ▲";font-size:10px}th.desc::after{content:" ▼";font-size:10px}
.scroll{overflow-x:auto}.scroll.tall{max-height:560px;overflow-y:auto}
.scroll.tall thead th{position:sticky;top:0;z-index:1}
.findings{margin:6px 0;padding-left:18px}
.findings li{margin:3px 0;font-family:ui-monospace,"DejaVu Sans Mono",monospace;font-size:12.5px}
.warnings{margin:6px 0;padding:8px 10px 8px 28px;border-left:4px solid #d98e04;background:#fff7e6}
.warnings li{margin:3px 0}
.facts{display:flex;flex-wrap:wrap;gap:10px;margin:6px 0 10px}
.fact{background:var(--soft);border-radius:5px;padding:6px 12px;min-width:120px}
.fact b{display:block;font-size:18px}.fact span{color:var(--muted);font-size:12px}
.figs{display:grid;grid-template-columns:repeat(auto-fit,minmax(440px,1fr));gap:14px;align-items:start}
figure{margin:0}
figure svg{width:100%;max-width:760px;height:auto;display:block}
section>figure svg,.stack svg{max-width:700px}
.stack figure{margin-bottom:16px}
figcaption{color:var(--muted);font-size:12.5px;margin-top:2px}
.thumbs{display:flex;flex-wrap:wrap;gap:8px}
.thumb{width:80px;font-size:10.5px;line-height:1.25;color:var(--muted);text-align:center;overflow-wrap:anywhere}
.thumb img{width:72px;height:72px;image-rendering:pixelated;border:1px solid var(--line);display:block;margin:0 auto 2px}
.up{color:#1b7f3b}.down{color:#b3261e}.flag{font-weight:700}
.note{color:var(--muted);font-size:13px}
.explain{align-items:center;margin:6px 0;padding:4px 0;border-bottom:1px dashed var(--line)}
.arrow{font-size:22px;color:var(--muted);padding:0 4px}
table.critic td{white-space:normal;vertical-align:top;border-bottom:none}table.critic th{vertical-align:top}
table.critic .thumbs{flex-wrap:nowrap;gap:3px}table.critic .thumb{width:50px;font-size:9px}
table.critic .thumb img{width:48px;height:48px}
table.critic tr.first td,table.critic tr.first th{border-top:2px solid var(--line)}
"""

# Sort a table by the clicked column: numbers by their data-v value, text otherwise; a second click reverses.
_JS = """
document.querySelectorAll("table.sortable").forEach(function (t) {
  t.querySelectorAll("th").forEach(function (th, i) {
    th.addEventListener("click", function () {
      var asc = !th.classList.contains("asc"), body = t.tBodies[0];
      t.querySelectorAll("th").forEach(function (h) { h.classList.remove("asc", "desc"); });
      th.classList.add(asc ? "asc" : "desc");
      var key = function (r) { var c = r.cells[i], v = c.getAttribute("data-v");
        return v === null ? [1, c.textContent] : [0, parseFloat(v)]; };
      Array.from(body.rows).sort(function (a, b) {
        var x = key(a), y = key(b);
        var d = x[0] - y[0] || (x[1] < y[1] ? -1 : x[1] > y[1] ? 1 : 0);
        return asc || x[0] !== y[0] ? d : -d;
      }).forEach(function (r) { body.appendChild(r); });
    });
  });
});
"""


def render_page(title: str, subtitle: str, sections: Sequence[Section], *, footer: str | None = None) -> str:
    """The whole self-contained page: header, a contents bar, then each section with its sources, and ``footer``
    (provenance) at the end."""
    nav = join(tag("a", s.title, href=f"#{s.id}") for s in sections)
    parts = []
    for s in sections:
        parts.append(tag(
            "section",
            tag("h2", s.title),
            tag("p", Html("from "), code_list(s.sources), class_="src") if s.sources else Html(""),
            tag("p", s.intro, class_="intro") if s.intro else Html(""),
            s.body,
            id=s.id,
        ))
    return ("<!DOCTYPE html>\n" + tag(
        "html",
        tag("head", Html('<meta charset="utf-8">'), Html('<meta name="viewport" content="width=device-width, initial-scale=1">'),
            tag("title", title), tag("style", Html(_CSS))),
        tag("body", tag("header", tag("h1", title), tag("p", subtitle)), tag("nav", nav), tag("main", join(parts)),
            tag("footer", footer, class_="provenance") if footer else Html(""), tag("script", Html(_JS))),
        lang="en",
    ) + "\n")
