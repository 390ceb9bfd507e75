"""Train models, watch their progress, compare them, choose the one /predict serves."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from musicrec.ui.common import api, call, job_running, show_job, start_job

JOB = "models-job"

st.title("Models")
running = job_running(JOB)

with st.form("train"):
    st.subheader("Train a model")
    name = st.text_input("Model name", value="als-ui")
    model_type = st.selectbox("Model type", ["ALS"])
    factors = st.slider("factors", 10, 100, 32, 1)
    iterations = st.slider("iterations", 1, 50, 15, 1)
    regularization = st.slider("regularization", 0.0, 1.0, 0.05, 0.01)
    alpha = st.slider("alpha", 0.0, 1.0, 1.0, 0.01)
    st.caption(
        "The sliders keep the product spec's ranges. Measured on the sample, alpha below 1 "
        "ranks below popularity and the best default is alpha 20: use the advanced values."
    )
    with st.expander("Advanced: the API's wider ranges"):
        wide = st.checkbox("use these values instead of the sliders")
        wide_factors = st.number_input("factors (1-1024)", 1, 1024, 32)
        wide_iterations = st.number_input("iterations (1-1000)", 1, 1000, 15)
        wide_alpha = st.number_input("alpha (>= 0; measured default 20)", 0.0, 1e6, 20.0)
        wide_reg = st.number_input("regularization (>= 0)", 0.0, 1e6, 0.05)
    submitted = st.form_submit_button("Train model", disabled=running)
if submitted:
    body = {
        "model_name": name,
        "model_type": model_type,
        "factors": int(wide_factors if wide else factors),
        "iterations": int(wide_iterations if wide else iterations),
        "regularization": float(wide_reg if wide else regularization),
        "alpha": float(wide_alpha if wide else alpha),
    }
    accepted = call(api().fit, body)
    if accepted is not None:
        start_job(JOB, accepted)
show_job(JOB)

st.subheader("Available models")
models = call(api().models)
if models:
    rows = [
        {
            "active": "★" if m["is_active"] else "",
            "model_id": m["model_id"],
            "name": m["name"],
            "status": m["status"],
            "created_at": m["created_at"],
            "factors": m["params"].get("factors"),
            "alpha": m["params"].get("alpha"),
            "recall@10": (m.get("metrics") or {}).get("recall@10"),
            "ndcg@10": (m.get("metrics") or {}).get("ndcg@10"),
            "parent": m.get("parent_id") or "",
            "error": m.get("error") or "",
        }
        for m in models
    ]
    st.dataframe(pd.DataFrame(rows), width="stretch", hide_index=True)
    ready = [m["model_id"] for m in models if m["status"] == "ready"]
    if ready:
        # Newest ready model first: the one just trained is the one most often activated.
        choice = st.selectbox("Model to activate", ready, index=0)
        if st.button("Set active model", disabled=running):
            done = call(api().set_active, choice)
            if done is not None:
                st.session_state["models-activated"] = done["model_id"]
                st.rerun()  # the table's active marker follows at once
        activated = st.session_state.pop("models-activated", None)
        if activated:
            st.success(f"{activated} is now the active model")
    scored = [r for r in rows if r["recall@10"] is not None]
    if scored:
        st.subheader("Offline metrics (per-user holdout)")
        chart = pd.DataFrame(scored).set_index("model_id")[["recall@10", "ndcg@10"]]
        st.bar_chart(chart, stack=False)
elif models == []:
    st.info("No models yet: train one above.")
