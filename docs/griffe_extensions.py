"""Griffe extension of the docs build (mkdocs.yml): Keras-style "Example:" sections.

kmix writes its docstring examples as Keras and keras-hub do, under
`Example:`. Griffe's Google-style parser knows only `Examples:`, and reads
any other title as an admonition of Markdown text, so `>>>` lines would be
drawn as block quotes and printed results such as `[0.0, 1.0]` taken for
Markdown links. This extension renames the section before parsing, so the
examples become highlighted code blocks. It changes nothing in kmix.
"""

import re

import griffe

_TITLE = re.compile(
    r"^[A-Z][A-Za-z ]*:\s*$"
)  # a section title at the left margin


def examples_section(text):
    """`text` with its unindented `Example:` sections made Google-style `Examples:` sections.

    The lines after the title, up to the next section title at the left
    margin (`Args:`, `Returns:`, ...) or the end, are indented under it,
    blank lines right after the title dropped (Google style wants the body
    to follow the title). Outside such sections, a run of `>>>` lines (with
    their `...` continuations and printed results, up to a blank line) is
    fenced as Python code, and a line that starts with `>=` is escaped, so
    that neither is read as a Markdown block quote.
    """
    lines = text.split("\n")
    out, inside, fenced, in_code = [], False, None, False
    for line in lines:
        stripped = line.strip()
        if stripped.startswith("```") and fenced is None:
            in_code = (
                not in_code
            )  # a fence of the docstring's own: left as it is
        if in_code or stripped.startswith("```"):
            out.append("    " + line if inside and stripped else line)
            continue
        if fenced is not None and not stripped:
            out.append(fenced + "```")
            fenced = None
        if line.rstrip() == "Example:":
            out.append("Examples:")
            inside = True
            continue
        if inside and _TITLE.match(line):
            inside = False
        if inside:
            if not stripped and out[-1] == "Examples:":
                continue  # the body must follow the title directly
            out.append("    " + line if stripped else "")
            continue
        if fenced is None and stripped.startswith(">>>"):
            fenced = line[: len(line) - len(line.lstrip())]
            out.append(fenced + "```python")
        elif fenced is None and stripped.startswith(">="):
            line = line.replace(">=", "\\>=", 1)
        out.append(line)
    if fenced is not None:
        out.append(fenced + "```")
    return "\n".join(out)


class ExampleSections(griffe.Extension):
    """Reads a docstring's `Example:` section as Google style's `Examples:`."""

    def on_object(self, *, obj, **kwargs):
        if obj.docstring is not None and (
            ">" in obj.docstring.value or "Example:" in obj.docstring.value
        ):
            obj.docstring.value = examples_section(obj.docstring.value)
