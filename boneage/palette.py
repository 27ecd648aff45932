"""The project's one colour palette (Okabe–Ito: colour-blind safe), for every figure.

Blue and vermillion carry the two roles a figure here has: boys / girls on the dataset figures,
the reference / the child on the growth chart, training / validation on the training curves.
"""
from __future__ import annotations

BLUE = "#0072B2"
VERMILLION = "#D55E00"

SEX_COLOURS = {"female": VERMILLION, "male": BLUE}  # keyed by boneage.vocab.sex_label
REF_COLOUR, CHILD_COLOUR = BLUE, VERMILLION  # growth chart: the Greulich–Pyle reference, the child
BAND_FILL = "rgba(0,114,178,0.15)"  # the reference's normal range: BLUE at 15 %
TRAIN_COLOUR, VAL_COLOUR = BLUE, VERMILLION  # training curves
TEMPLATE = "plotly_white"
