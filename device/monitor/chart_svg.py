"""The state diagram for the page, drawn as plain SVG from the transition table (no renderer, no CDN).

States sit on a circle in the table's order (the way a turn flows, then the rest); each edge of
`device.core.chart.edges()` is a curve bent to its right, so the two directions between a pair do not overlap,
and carries its triggers as a tooltip. Each state is `<g id="state-NAME">` and each edge
`<path id="edge-FROM-TO">`, which the page lights as steps arrive.
"""

from __future__ import annotations

import math
from html import escape

from device.core.chart import edges
from device.core.states import STATE_TYPES

WIDTH_PX = 560
HEIGHT_PX = 560
RADIUS_PX = 215
BOX_WIDTH_PX = 96
BOX_HEIGHT_PX = 28
BEND = 0.18  # how far an edge bows to its right, as a share of its length


def positions() -> dict[str, tuple[float, float]]:
    names = [state.__name__ for state in STATE_TYPES]
    centre_x, centre_y = WIDTH_PX / 2, HEIGHT_PX / 2
    out: dict[str, tuple[float, float]] = {}
    for index, name in enumerate(names):
        angle = -math.pi / 2 + 2 * math.pi * index / len(names)
        out[name] = (round(centre_x + RADIUS_PX * math.cos(angle), 1), round(centre_y + RADIUS_PX * math.sin(angle), 1))
    return out


def state_diagram_svg() -> str:
    where = positions()
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH_PX} {HEIGHT_PX}" id="diagram" role="img" '
        'aria-label="state diagram generated from the transition table">',
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="6" markerHeight="6" '
        'orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" fill="currentColor"/></marker></defs>',
    ]
    for (source, target), triggers in sorted(edges().items()):
        (x1, y1), (x2, y2) = where[source], where[target]
        dx, dy = x2 - x1, y2 - y1
        length = math.hypot(dx, dy) or 1.0
        control_x, control_y = (x1 + x2) / 2 - dy * BEND, (y1 + y2) / 2 + dx * BEND
        end_x, end_y = _toward_box_edge(x2, y2, control_x, control_y)
        start_x, start_y = _toward_box_edge(x1, y1, control_x, control_y)
        title = escape(f"{source} → {target}: {', '.join(sorted(set(triggers)))}")
        parts.append(
            f'<path class="edge" id="edge-{source}-{target}" d="M {start_x:.1f} {start_y:.1f} Q {control_x:.1f} '
            f'{control_y:.1f} {end_x:.1f} {end_y:.1f}" marker-end="url(#arrow)" data-length="{length:.0f}">'
            f"<title>{title}</title></path>"
        )
    for name, (x, y) in where.items():
        parts.append(
            f'<g class="state" id="state-{name}"><rect x="{x - BOX_WIDTH_PX / 2:.1f}" y="{y - BOX_HEIGHT_PX / 2:.1f}" '
            f'width="{BOX_WIDTH_PX}" height="{BOX_HEIGHT_PX}" rx="8"/>'
            f'<text x="{x:.1f}" y="{y + 5:.1f}" text-anchor="middle">{escape(name)}</text></g>'
        )
    parts.append("</svg>")
    return "\n".join(parts)


def _toward_box_edge(x: float, y: float, toward_x: float, toward_y: float) -> tuple[float, float]:
    """Where the line from a box's centre toward a point leaves the box (so arrows end at the box, not in it)."""
    dx, dy = toward_x - x, toward_y - y
    if dx == 0 and dy == 0:
        return x, y
    scale = min(
        (BOX_WIDTH_PX / 2) / abs(dx) if dx else math.inf,
        (BOX_HEIGHT_PX / 2) / abs(dy) if dy else math.inf,
    )
    return x + dx * scale, y + dy * scale
