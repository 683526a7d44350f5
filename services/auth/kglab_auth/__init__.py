"""The auth service: Users, sessions, tokens, API keys and password resets."""
