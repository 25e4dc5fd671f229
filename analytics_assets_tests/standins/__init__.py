"""Stand-ins for well-known public REST APIs: real HTTP servers on 127.0.0.1, shaped like each API's
public documentation, with OAuth2 client credentials and deterministic data (see `apis.py`)."""
