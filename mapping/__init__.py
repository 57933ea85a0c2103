"""The pure core of the connector: domain model, rules, planner and message builders.

Nothing in this package touches a database, the network, the clock or a random source:
every input, including ``now``, is passed in.
"""
