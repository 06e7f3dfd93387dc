"""blo-alert wire contract."""
