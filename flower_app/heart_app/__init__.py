"""Flower app of notebook 08: the hospitals' ClientApp and the FedAvg ServerApp."""
