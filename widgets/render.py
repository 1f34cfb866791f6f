"""Markdown and code rendering for replies. Model output is untrusted: raw HTML in it is
escaped (markdown-it with ``html`` off), code is highlighted by Pygments."""

from __future__ import annotations

import html
import re

from markdown_it import MarkdownIt
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import TextLexer, get_lexer_by_name
from pygments.util import ClassNotFound

_FORMATTER = HtmlFormatter(nowrap=True)
# types-Pygments leaves HtmlFormatter.get_style_defs unannotated (it returns the CSS text)
CODE_CSS: str = HtmlFormatter().get_style_defs(".ds-code")  # type: ignore[no-untyped-call]
_FENCE = re.compile(r"```[ \t]*([\w+-]*)[^\n]*\n(.*?)```", re.DOTALL)


def _highlight(code: str, lang: str, _attrs: object = None) -> str:
    try:
        lexer = get_lexer_by_name(lang) if lang else TextLexer()
    except ClassNotFound:
        lexer = TextLexer()
    return f'<pre class="ds-code"><code>{highlight(code, lexer, _FORMATTER)}</code></pre>'


_MD = MarkdownIt("commonmark", {"html": False, "highlight": _highlight}).enable("table")


def markdown_html(text: str) -> str:
    rendered: str = _MD.render(text)  # markdown-it types render() as Any; the HTML renderer returns str
    return rendered


def code_blocks(text: str) -> list[str]:
    """The fenced code blocks of a reply, in order (what "insert code" offers)."""
    return [m.group(2) for m in _FENCE.finditer(text)]


def escape(text: str) -> str:
    return html.escape(text)
