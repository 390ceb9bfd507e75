"""The Streamlit UI: EDA, model management, recommendations, federated runs (API over HTTP)."""
