"""Writing tests for a request: the one path from a position in a file to tests ready to insert
(`service`), and several waiting requests decoded in one batch (`batching`)."""
