"""The dashboard as a shop process: records every shop event and serves the web page."""
