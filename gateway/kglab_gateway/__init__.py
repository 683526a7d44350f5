"""The API gateway: the only public entry point of Knowledge Graph Lab."""
