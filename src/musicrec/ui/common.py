"""What every page shares: the API client, the API-down message, job polling."""

from __future__ import annotations

from typing import Any

import streamlit as st

from musicrec.ui.client import ApiClient, ApiError

FINISHED = ("succeeded", "failed", "cancelled")


def api() -> ApiClient:
    return ApiClient.from_env()


def call(action: Any, *args: Any, **kwargs: Any) -> Any:
    """Run one API call; on failure show the reason in the page and return None."""
    try:
        return action(*args, **kwargs)
    except ApiError as exc:
        st.error(str(exc))
        return None


def job_running(key: str) -> bool:
    """True while the job this page started (kept in the session) has not finished."""
    job = st.session_state.get(key)
    return isinstance(job, dict) and job.get("status") not in FINISHED


def start_job(key: str, accepted: dict[str, Any]) -> None:
    """Remember the job the API accepted (and its warnings), then redraw the page."""
    st.session_state[key] = {
        "job_id": accepted["job_id"],
        "model_id": accepted["model_id"],
        "status": "queued",
        "progress": 0.0,
        "message": "queued",
    }
    st.session_state[f"{key}-warnings"] = list(accepted.get("warnings", []))
    st.rerun()


def show_job(key: str) -> None:
    """Progress bar of the page's job; refreshes itself every second until it finishes."""

    for note in st.session_state.get(f"{key}-warnings", []):
        st.warning(note)

    @st.fragment(run_every=1.0)
    def _progress() -> None:
        job = st.session_state.get(key)
        if not job:
            return
        if job.get("status") not in FINISHED:
            fresh = call(api().job, job["job_id"])
            if fresh is not None:
                st.session_state[key] = job = fresh
        st.progress(
            float(job.get("progress") or 0.0), text=f"{job['status']}: {job.get('message')}"
        )
        if job["status"] == "succeeded":
            st.success(f"job {job['job_id']} succeeded: model {job.get('model_id')} is ready")
        elif job["status"] in ("failed", "cancelled"):
            st.error(f"job {job['job_id']} {job['status']}: {job.get('error')}")
        if job["status"] in FINISHED and st.session_state.get(f"{key}-rerun") != job["job_id"]:
            # Once: rerun the whole page so tables and buttons see the finished job.
            st.session_state[f"{key}-rerun"] = job["job_id"]
            st.rerun()

    _progress()
