"""What every shop service shares: column types, database creation, the service builder."""
