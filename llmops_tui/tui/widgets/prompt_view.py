"""Prompt templates: syntax-highlighted view and a side-by-side diff of two prompts."""

from __future__ import annotations

import difflib

from rich.console import Group
from rich.syntax import Syntax
from rich.table import Table
from rich.text import Text


def lexer_for(filename: str | None) -> str:
    name = (filename or "").lower()
    if name.endswith((".jinja2", ".jinja", ".j2")):
        return "jinja"
    if name.endswith(".py"):
        return "python"
    if name.endswith((".md", ".prompty")):
        return "markdown"
    return "text"


def prompt_syntax(text: str, filename: str | None, *, dark: bool = True) -> Syntax:
    return Syntax(
        text,
        lexer_for(filename),
        theme="monokai" if dark else "default",
        line_numbers=True,
        word_wrap=True,
        background_color="default",
    )


def side_by_side_diff(left: str, right: str, left_title: str, right_title: str) -> Table:
    """Two columns, line by line: removed lines red on the left, added green on the right, changed
    lines with the differing words highlighted."""
    table = Table(expand=True, show_lines=False, pad_edge=False, box=None)
    table.add_column(left_title, ratio=1, overflow="fold")
    table.add_column(right_title, ratio=1, overflow="fold")
    a, b = left.splitlines(), right.splitlines()
    matcher = difflib.SequenceMatcher(a=a, b=b, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            for x, y in zip(a[i1:i2], b[j1:j2], strict=True):
                table.add_row(Text(x, style="dim"), Text(y, style="dim"))
        elif tag == "replace":
            for k in range(max(i2 - i1, j2 - j1)):
                # a replaced block can be longer on one side: past its end that side has no line
                old = a[i1 + k] if i1 + k < i2 else None
                new = b[j1 + k] if j1 + k < j2 else None
                if old is not None and new is not None:
                    tx, ty = word_diff(old, new)
                    table.add_row(tx, ty)
                else:
                    table.add_row(Text(old or "", style="red"), Text(new or "", style="green"))
        elif tag == "delete":
            for x in a[i1:i2]:
                table.add_row(Text("- " + x, style="red"), Text(""))
        elif tag == "insert":
            for y in b[j1:j2]:
                table.add_row(Text(""), Text("+ " + y, style="green"))
    return table


def word_diff(left: str, right: str) -> tuple[Text, Text]:
    """Highlight the words that differ between two strings."""
    a, b = left.split(" "), right.split(" ")
    ta, tb = Text(), Text()
    matcher = difflib.SequenceMatcher(a=a, b=b, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        wa, wb = " ".join(a[i1:i2]), " ".join(b[j1:j2])
        if tag == "equal":
            ta.append(wa + " ")
            tb.append(wb + " ")
        else:
            if wa:
                ta.append(wa, style="bold black on red")
                ta.append(" ")
            if wb:
                tb.append(wb, style="bold black on green")
                tb.append(" ")
    ta.rstrip()
    tb.rstrip()
    return ta, tb


def params_table(params: dict) -> Table | Text:
    if not params:
        return Text("no literal parameters", style="dim")
    table = Table(box=None, pad_edge=False, show_header=True, header_style="bold")
    table.add_column("parameter")
    table.add_column("value")
    for k, v in params.items():
        table.add_row(str(k), repr(v) if isinstance(v, str) else str(v))
    return table


def titled(title: str, body) -> Group:
    return Group(Text(title, style="bold"), body)
