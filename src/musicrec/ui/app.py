"""musicrec's UI: `musicrec ui` (or `streamlit run src/musicrec/ui/app.py`)."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

PAGES = Path(__file__).resolve().parent / "pages"

st.set_page_config(page_title="musicrec", layout="wide")
navigation = st.navigation(
    [
        st.Page(PAGES / "eda.py", title="EDA", default=True),
        st.Page(PAGES / "models.py", title="Models"),
        st.Page(PAGES / "recommendations.py", title="Recommendations"),
        st.Page(PAGES / "federated.py", title="Federated"),
    ]
)
navigation.run()
