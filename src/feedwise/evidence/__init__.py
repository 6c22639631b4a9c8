"""Evidence before shipping a feed policy: the attention simulator and its policies
(``simulator``, ``policies``, ``engine_policy``), the revenue ↔ experience frontier simulated
(``frontier``) or estimated from logged feeds (``frontier_ope``), off-policy evaluation
(``logs``, ``estimators``) and A/B test statistics (``abtest``).

Import the modules themselves; this package re-exports nothing.
"""
