"""Federated fine-tuning runs: start one, watch it, see its curves beside its parent."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from musicrec.ui.common import api, call, job_running, show_job, start_job

JOB = "federated-job"

st.title("Federated fine-tuning")
st.caption(
    "Clients keep their listening logs; only gradient blocks over each round's song set reach "
    "the server (Flower simulation on the API's machine)."
)
running = job_running(JOB)
with st.form("federate"):
    clients = st.number_input("clients (silos)", 2, 10_000, 10)
    per_round = st.number_input("clients per round (0 = all)", 0, 10_000, 0)
    rounds = st.slider("rounds", 1, 50, 5)
    dp_epsilon = st.number_input("DP epsilon (0 = off)", 0.0, 1000.0, 0.0)
    secagg = st.checkbox("secure aggregation")
    aggregation = st.selectbox("aggregation", ["mean", "clip", "trimmed-mean", "median"])
    submitted = st.form_submit_button("Start federated run", disabled=running)
if submitted:
    body = {
        "clients": int(clients),
        "clients_per_round": int(per_round),
        "rounds": int(rounds),
        "dp_epsilon": float(dp_epsilon),
        "secagg": secagg,
        "aggregation": aggregation,
    }
    accepted = call(api().federate, body)
    if accepted is not None:
        start_job(JOB, accepted)
show_job(JOB)

models = call(api().models) or []
federated = [m for m in models if m.get("metrics") and m["metrics"].get("rounds")]
if not federated:
    st.info("No finished federated run yet.")
    st.stop()
by_id = {m["model_id"]: m for m in models}
choice = st.selectbox("Run", [m["model_id"] for m in federated])
run = by_id[choice]
curve = pd.DataFrame(run["metrics"]["rounds"]).set_index("round")
quality = [c for c in ("recall@10", "ndcg@10") if c in curve]
if quality:
    st.subheader("Quality per round")
    st.line_chart(curve[quality])
st.subheader("Bytes per client per round")
st.line_chart(curve[["bytes_up_per_client", "bytes_down_per_client"]])
st.subheader("The run beside its parent")
rows = []
for label, model in (("federated", run), ("parent", by_id.get(run.get("parent_id") or ""))):
    if model:
        metrics = model.get("metrics") or {}
        rows.append(
            {
                "": label,
                "model_id": model["model_id"],
                "recall@10": metrics.get("recall@10"),
                "ndcg@10": metrics.get("ndcg@10"),
            }
        )
st.dataframe(pd.DataFrame(rows), hide_index=True)
privacy = run["metrics"].get("privacy") or {}
st.write(
    f"aggregation **{privacy.get('aggregation')}**, secure aggregation "
    f"**{'on' if privacy.get('secagg') else 'off'}**, DP epsilon **{privacy.get('epsilon')}**"
)
