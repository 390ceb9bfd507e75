"""Federated fine-tuning of ALS on Flower: client app, server app, aggregation, privacy."""
