"""musicrec: music recommendation with implicit ALS, fine-tunable by federated learning."""

__version__ = "0.1.0"
