"""`evaluate` metric scripts that ship inside the package, so that evaluation never fetches a script from the Hub.

Each file here is a self-contained `evaluate` module (it imports only `datasets`, `evaluate` and `numpy`, because
`evaluate` copies it into its modules cache and imports it from there). Load them with
`hf_viewmaker.evaluation.metrics.load_metric(name)`, or with `evaluate.load(path_to_the_file)`.
"""
