"""The delivery pipeline's middleware, one per file; composed in `tidings.service`."""
