"""Talking to servers: the HTTP clients and the retry policy, the SSE reader, the URL policy
that keeps downloads off private addresses, and the downloads themselves."""
