"""The Phase-1 research: the brief generated from measurements, and the side-by-side studies."""
