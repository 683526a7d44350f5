"""Events the vector service consumes and publishes."""
