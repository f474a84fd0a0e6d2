"""The streaming gateway: every guest's screen and sound as WebRTC, input back (see gateway.py)."""
