"""The process guardian's contact with the outside: network probes and psutil readings.

Kept apart from the domain (conditions, grading) so that the judging stays pure and testable
without sockets, and so that everything here can promise the same thing to its caller: a
target that is down, slow or hung is an observation, never an exception.
"""
