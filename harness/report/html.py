"""The self-contained HTML report: one file, jinja2 with autoescaping, figures as base64 PNG."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import jinja2

from harness.report.figures import figure_png, freeze_layout, png_size

if TYPE_CHECKING:
    from harness.report.document import ReportContent

TEMPLATE_DIRECTORY = Path(__file__).parent / "templates"
TEMPLATE_NAME = "report.html.j2"
PNG_DPI = 100  # 9-inch figures -> 900 px wide: sharp in a 1100 px page, ~60-150 kB each


@dataclass(frozen=True)
class EmbeddedFigure:
    """A figure as the template needs it: base64 PNG and its pixel size."""

    key: str
    title: str
    caption: str
    png_base64: str
    width: int
    height: int


def embed_figures(content: ReportContent, dpi: int = PNG_DPI) -> list[EmbeddedFigure]:
    """Render every figure of `content` to PNG and base64-encode it."""
    embedded = []
    for item in content.figures:
        png = figure_png(item.figure, dpi)
        width, height = png_size(png)
        freeze_layout(item.figure)  # the PDF saves it again: reuse this layout
        embedded.append(
            EmbeddedFigure(
                item.key,
                item.title,
                item.caption,
                base64.b64encode(png).decode("ascii"),
                width,
                height,
            )
        )
    return embedded


def environment() -> jinja2.Environment:
    """The jinja2 environment: templates from this package, autoescape ON for every template,
    undefined names raise (a template typo fails loudly instead of rendering an empty string)."""
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATE_DIRECTORY),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def render_html(content: ReportContent) -> str:
    """The report page as a string."""
    return environment().get_template(TEMPLATE_NAME).render(content=content, figures=embed_figures(content))
