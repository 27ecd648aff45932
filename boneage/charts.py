"""Growth chart: the child's bone age against chronological age on the
Greulich-Pyle (Brush Foundation) reference for their sex.

Two renderings of the same picture: an interactive plotly figure for the app,
and a static PNG (matplotlib, Agg) for the PDF report -- plotly's static export
needs kaleido and a downloaded browser, which a clinic workstation may not have.
Both draw the normal range as chronological age +/- 2 SD, i.e. exactly the
thresholds `boneage.clinical` uses for the delayed / normal / advanced status,
so a point outside the band is always flagged and vice versa.
"""
from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from .clinical import gp_reference
from .palette import BAND_FILL, CHILD_COLOUR, REF_COLOUR, TEMPLATE
from .vocab import parse_sex, sex_word


@dataclass(frozen=True)
class ChartData:
    """Everything both renderings draw, in years."""

    sex: str
    ages_y: np.ndarray  # reference chronological ages
    mean_y: np.ndarray  # Brush Foundation mean skeletal age
    lower_y: np.ndarray  # CA - 2 SD
    upper_y: np.ndarray  # CA + 2 SD
    bone_age_y: float
    chronological_age_y: float | None
    uncertainty_y: float | None
    #: Follow-up: every visit (chronological age, bone age) in years, oldest first.
    visits_y: tuple[tuple[float, float], ...] = field(default_factory=tuple)

    @property
    def title(self) -> str:
        return f"Bone age vs chronological age ({sex_word(self.sex, plural=True)}, Greulich-Pyle)"

    @property
    def axis_max(self) -> float:
        top = max(self.upper_y.max(), self.bone_age_y + (self.uncertainty_y or 0.0),
                  self.chronological_age_y or 0.0, *(max(v) for v in self.visits_y))
        return float(np.ceil(top + 0.5))


def chart_data(sex: str, bone_age_months: float, chronological_age_months: float | None,
               uncertainty_months: float | None = None,
               visits: Sequence[tuple[float, float]] = ()) -> ChartData:
    """Reference curves and the child's point (and follow-up visits as (CA, BA) months), in years."""
    s = parse_sex(sex)
    ref = gp_reference(s)
    ages = ref["ages_months"].to_numpy() / 12.0
    sd = ref["sd_months"].to_numpy() / 12.0
    return ChartData(
        sex=s,
        ages_y=ages,
        mean_y=ref["mean_months"].to_numpy() / 12.0,
        lower_y=np.maximum(ages - 2 * sd, 0.0),
        upper_y=ages + 2 * sd,
        bone_age_y=float(bone_age_months) / 12.0,
        chronological_age_y=None if chronological_age_months is None else chronological_age_months / 12.0,
        uncertainty_y=None if uncertainty_months is None else float(uncertainty_months) / 12.0,
        visits_y=tuple((float(ca) / 12.0, float(ba) / 12.0) for ca, ba in visits),
    )


def growth_chart(sex: str, bone_age_months: float, chronological_age_months: float | None,
                 uncertainty_months: float | None = None, visits: Sequence[tuple[float, float]] = ()):
    """Plotly figure: reference mean, +/-2 SD band, identity line, the child's point.

    With no chronological age the child's bone age is drawn as a horizontal
    line, since there is no point to place.
    """
    import plotly.graph_objects as go

    d = chart_data(sex, bone_age_months, chronological_age_months, uncertainty_months, visits)
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=d.ages_y, y=d.upper_y, mode="lines", line=dict(width=0),
                             hoverinfo="skip", showlegend=False, name="+2 SD"))
    fig.add_trace(go.Scatter(x=d.ages_y, y=d.lower_y, mode="lines", line=dict(width=0),
                             fill="tonexty", fillcolor=BAND_FILL, name="Normal range (CA ± 2 SD)",
                             hoverinfo="skip"))
    fig.add_trace(go.Scatter(x=d.ages_y, y=d.mean_y, mode="lines+markers", name="Reference mean (Brush Foundation)",
                             line=dict(color=REF_COLOUR, width=2), marker=dict(size=4),
                             hovertemplate="CA %{x:.2f} y<br>mean BA %{y:.2f} y<extra></extra>"))
    fig.add_trace(go.Scatter(x=[0, d.axis_max], y=[0, d.axis_max], mode="lines", name="Bone age = chronological age",
                             line=dict(color="grey", width=1, dash="dash"), hoverinfo="skip"))
    if d.visits_y:
        fig.add_trace(go.Scatter(x=[v[0] for v in d.visits_y], y=[v[1] for v in d.visits_y],
                                 mode="lines+markers", name="Visits (follow-up)",
                                 line=dict(color=CHILD_COLOUR, width=1.5), marker=dict(size=7),
                                 hovertemplate="CA %{x:.2f} y<br>BA %{y:.2f} y<extra></extra>"))
    if d.chronological_age_y is None:
        fig.add_hline(y=d.bone_age_y, line=dict(color=CHILD_COLOUR, dash="dot", width=2),
                      annotation_text="child's bone age (no chronological age given)")
    else:
        err = None if d.uncertainty_y is None else dict(type="constant", value=d.uncertainty_y,
                                                        color=CHILD_COLOUR, thickness=2, width=6)
        fig.add_trace(go.Scatter(x=[d.chronological_age_y], y=[d.bone_age_y], mode="markers", name="This child",
                                 marker=dict(color=CHILD_COLOUR, size=12, symbol="diamond"), error_y=err,
                                 hovertemplate="CA %{x:.2f} y<br>BA %{y:.2f} y<extra></extra>"))
    fig.update_layout(title=d.title, template=TEMPLATE, legend=dict(x=0.01, y=0.99),
                      margin=dict(l=60, r=20, t=60, b=50))
    fig.update_xaxes(title_text="Chronological age (years)", range=[0, d.axis_max], dtick=1)
    fig.update_yaxes(title_text="Bone age (years)", range=[0, d.axis_max], dtick=1)
    return fig


def growth_chart_png(sex: str, bone_age_months: float, chronological_age_months: float | None,
                     uncertainty_months: float | None = None, *, dpi: int = 150,
                     visits: Sequence[tuple[float, float]] = ()) -> bytes:
    """The same chart as a PNG (matplotlib, Agg backend) for the PDF report."""
    # No pyplot: no global figure state or backend switch, safe inside a web server.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    d = chart_data(sex, bone_age_months, chronological_age_months, uncertainty_months, visits)
    fig = Figure(figsize=(7.0, 3.6), dpi=dpi)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    ax.fill_between(d.ages_y, d.lower_y, d.upper_y, color=REF_COLOUR, alpha=0.15,
                    label="Normal range (CA ± 2 SD)")
    ax.plot(d.ages_y, d.mean_y, color=REF_COLOUR, lw=1.5, marker="o", ms=2.5,
            label="Reference mean (Brush Foundation)")
    ax.plot([0, d.axis_max], [0, d.axis_max], color="grey", lw=0.8, ls="--",
            label="Bone age = chronological age")
    if d.visits_y:
        ax.plot([v[0] for v in d.visits_y], [v[1] for v in d.visits_y], color=CHILD_COLOUR, lw=1.0,
                marker="o", ms=4, label="Visits (follow-up)")
    if d.chronological_age_y is None:
        ax.axhline(d.bone_age_y, color=CHILD_COLOUR, ls=":", lw=1.5, label="Child's bone age (no CA)")
    else:
        ax.errorbar([d.chronological_age_y], [d.bone_age_y], yerr=d.uncertainty_y, fmt="D",
                    color=CHILD_COLOUR, ms=6, capsize=4, label="This child")
    ax.set_xlim(0, d.axis_max)
    ax.set_ylim(0, d.axis_max)
    ax.set_xlabel("Chronological age (years)")
    ax.set_ylabel("Bone age (years)")
    ax.set_title(d.title, fontsize=10)
    ax.grid(True, lw=0.3)
    ax.legend(loc="upper left", fontsize=7, frameon=False)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()
