"""Bar charts as inline SVG, drawn on the server: no chart library, no network."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

WIDTH = 560
HEIGHT = 160
PAD = 24


def bars(title: str, points: Sequence[tuple[str, float]], unit: str = "") -> str:
    """One SVG bar chart; each bar carries a <title> tooltip with its exact value."""
    label = escape(title)
    if not points:
        return f'<figure class="chart"><figcaption>{label}</figcaption><p>no data yet</p></figure>'
    top = max(v for _, v in points) or 1.0
    step = (WIDTH - 2 * PAD) / len(points)
    parts = [
        f'<svg role="img" aria-label="{label}" viewBox="0 0 {WIDTH} {HEIGHT + PAD}" '
        f'width="{WIDTH}" height="{HEIGHT + PAD}">',
        f'<line x1="{PAD}" y1="{HEIGHT}" x2="{WIDTH - PAD}" y2="{HEIGHT}" class="axis"/>',
    ]
    for i, (name, value) in enumerate(points):
        h = (HEIGHT - PAD) * value / top
        x = PAD + i * step
        parts.append(
            f'<rect x="{x + 2:.1f}" y="{HEIGHT - h:.1f}" width="{max(step - 4, 1):.1f}" '
            f'height="{h:.1f}" class="bar"><title>{escape(name)}: {value:g}{unit}</title></rect>'
        )
        if len(points) <= 16 or i % max(1, len(points) // 8) == 0:
            parts.append(
                f'<text x="{x + step / 2:.1f}" y="{HEIGHT + 14}" text-anchor="middle">'
                f"{escape(name[-5:])}</text>"
            )
    parts.append(f'<text x="{PAD}" y="12">max {top:g}{unit}</text></svg>')
    return f'<figure class="chart"><figcaption>{label}</figcaption>{"".join(parts)}</figure>'
