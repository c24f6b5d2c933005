"""Analysis: a traced forward pass turned into totals and groupings that add up.

Nothing is imported here, so that the command line reads torch-free tables from a submodule (the
optimizers and precisions of ``archprof.analysis.training``) without importing torch; the public
names are ``archprof``'s (``archprof.profile``, ``archprof.compare``, ``archprof.Profile``).
"""
