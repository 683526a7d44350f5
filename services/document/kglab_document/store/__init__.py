"""Where documents and chunks are kept: the port and one module per adapter."""
