"""Recommendations for a listener, a new listener's fold-in, and listen/skip logging."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from musicrec.ui.common import api, call

DATASET = "kkbox-sample"

st.title("Recommendations")
client = api()
health = call(client.health)
if health is None:
    st.stop()
if not health.get("active_model"):
    st.warning("No active model: train one and set it active on the Models page.")
    st.stop()
st.caption(f"active model: {health['active_model']}")

users = call(client.users, 200, 0) or {"data": [], "count": 0}
st.write(f"{users['count']:,} listeners are known to the active model.")
by = st.radio("Choose the listener by", ["user index", "msno"], horizontal=True)
user_id: int | None
msno: str | None
if by == "user index":
    user_id = int(st.number_input("user_id", min_value=0, value=0, step=1))
    msno = None
else:
    options = [u["msno"] for u in users["data"]]
    msno = st.selectbox("msno", options) if options else None
    user_id = None
n = st.slider("how many songs", 1, 50, 10)

if st.button("Recommend"):
    st.session_state["recs"] = call(client.predict, n, user_id=user_id, msno=msno)
result = st.session_state.get("recs")
if result:
    if result["cold_start"]:
        st.info("Unknown listener (cold start): these are the most popular songs.")
    left, right = st.columns([3, 2])
    with left:
        st.subheader("Recommended")
        for rank, item in enumerate(result.get("items") or [], start=1):
            cols = st.columns([6, 1, 1])
            label = item["song_id"]
            if item.get("artist_name"):
                label += f" · {item['artist_name']}"
            cols[0].write(f"{rank}. {label}")
            listener = result.get("msno") or "ui-listener"
            for col, verb, target in ((cols[1], "listen", 1), (cols[2], "skip", 0)):
                if col.button(verb, key=f"{verb}-{rank}-{item['song_id']}"):
                    event = {"msno": listener, "song_id": item["song_id"], "target": target}
                    event.update({"source_system_tab": "ui", "source_type": "ui-recommendation"})
                    logged = call(client.log_events, DATASET, [event])
                    if logged is not None:
                        st.toast(
                            f"logged {verb} of {item['song_id'][:12]}… ({logged['rows']} rows)"
                        )
    with right:
        st.subheader("Their history")
        if result.get("user_id") is not None:
            st.caption(f"listener {result['user_id']} · {result.get('msno')}")
            history = call(client.history, int(result["user_id"]), 20) or []
            st.markdown("\n".join(f"- `{song}`" for song in history) or "nothing yet")
        else:
            st.write("no history: the model has not seen this listener")

st.divider()
st.subheader("A new listener")
popular = call(client.predict, 50, user_id=10**9)
choices = popular["recommendations"] if popular else []
picked = st.multiselect("Songs they played", choices)
if st.button("Recommend for this history", disabled=not picked):
    folded = call(client.recommend, picked, 10)
    if folded is not None:
        st.dataframe(pd.DataFrame(folded.get("items") or []), hide_index=True)
