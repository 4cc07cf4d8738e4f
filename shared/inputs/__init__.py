"""Request inputs of each resource (JSON bodies and query strings), parsed and checked; pure.

Both backends call these, built from the field converters of `shared.validation`, so a bad
request gets the same 422 and the same details wherever it lands.
"""
