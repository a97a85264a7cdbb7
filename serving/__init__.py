"""Serving under load: `serve` puts one model × backend behind a Ray Serve application with dynamic batching;
`load` drives it (and the same model in-process) with the MLPerf LoadGen's Server scenario."""
