"""What every shop service shares: column types, database preparation, the service wrapper."""
