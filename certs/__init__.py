"""blo-alert trust."""
