"""The brief's API-framework study: the same five endpoints in FastAPI, Flask and Django REST
Framework, on the same in-memory data (``common.py``), served and loaded side by side."""
