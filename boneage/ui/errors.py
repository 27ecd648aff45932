"""The app's single error boundary: :func:`guard` turns any error into one ``st.error`` line.

Input errors (a bad image, bad clinical inputs, a malformed predictions table) show their own
message; anything else shows a short line and goes to the server log with its traceback, so no
traceback ever reaches the user.
"""
from __future__ import annotations

import logging
from contextlib import contextmanager

import streamlit as st

log = logging.getLogger("boneage.ui")


def friendly_message(exc: BaseException) -> str:
    """One line a user can act on, for any exception."""
    if _is_input_error(exc):
        return str(exc)
    if isinstance(exc, MemoryError):
        return "Not enough memory for this image; try a smaller file."
    text = " ".join(str(exc).split())[:200]
    return f"Something went wrong ({exc.__class__.__name__}{': ' + text if text else ''}). Details are in the server log."


@contextmanager
def guard(what: str | None = None):
    """Run a page body; show an unexpected error as one ``st.error`` line, never a traceback."""
    from streamlit.runtime.scriptrunner_utils.exceptions import ScriptControlException

    try:
        yield
    except ScriptControlException:  # st.stop / st.rerun / st.switch_page: Streamlit's own control flow
        raise
    except Exception as exc:  # noqa: BLE001 - the point is that nothing escapes to the user
        if _is_input_error(exc):  # bad input: the message says it all
            log.info("%s: %s", what or "page", exc)
            st.error(friendly_message(exc), icon=":material/error:")
        else:
            log.exception("error in %s", what or "page")
            st.error((f"{what}: " if what else "") + friendly_message(exc), icon=":material/error:")


def _is_input_error(exc: BaseException) -> bool:
    from ..clinical import ClinicalInputError
    from ..metrics import PredictionsError
    from ..io import ImageError
    from ..predict import PredictionError

    return isinstance(exc, (ImageError, PredictionError, ClinicalInputError, PredictionsError))
