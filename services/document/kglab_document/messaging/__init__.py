"""Events the document service consumes and publishes."""
