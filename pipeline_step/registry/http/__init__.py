"""HTTP below the registry API: transports move bytes, the session adds retries and auth,
and errors.py maps what came back onto the tool's exceptions."""
